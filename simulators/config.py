"""The charger's configuration key store (OCPP 1.6 §9), pure and synchronous, and the
GetConfiguration and ChangeConfiguration commands on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

# OCPP 1.6 §7 ConfigurationStatus, as the ocpp package has it.
from ocpp.v16.enums import ConfigurationStatus as ConfigStatus

__all__ = [
    "MEASURANDS",
    "STANDARD_KEYS",
    "ConfigStatus",
    "ConfigStore",
    "ConfigurationCommands",
    "KeySpec",
    "KeyType",
]


class KeyType(Enum):
    """How a key's value is written and checked."""

    BOOL = "bool"
    INT = "int"
    STR = "str"
    MEASURANDS = "measurands"  # comma-separated list of measurands
    CSL = "csl"  # free comma-separated list


MEASURANDS: Final = frozenset(
    {
        "Energy.Active.Import.Register",
        "Energy.Active.Import.Interval",
        "Power.Active.Import",
        "Power.Offered",
        "Current.Import",
        "Current.Offered",
        "Voltage",
        "Frequency",
        "Temperature",
        "SoC",
    }
)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A configuration key: its type, default, and whether the central system may change it."""

    name: str
    type: KeyType
    default: str
    readonly: bool = False
    reboot_required: bool = False
    minimum: int | None = None
    maximum: int | None = None


def _k(
    name: str,
    type_: KeyType,
    default: str,
    *,
    readonly: bool = False,
    reboot: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
) -> KeySpec:
    return KeySpec(name, type_, default, readonly, reboot, minimum, maximum)


B, N, S, M, L = KeyType.BOOL, KeyType.INT, KeyType.STR, KeyType.MEASURANDS, KeyType.CSL

STANDARD_KEYS: Final[tuple[KeySpec, ...]] = (
    # Core profile
    _k("AllowOfflineTxForUnknownId", B, "false"),
    _k("AuthorizationCacheEnabled", B, "true"),
    _k("AuthorizeRemoteTxRequests", B, "false"),
    _k("BlinkRepeat", N, "3", minimum=0),
    _k("ClockAlignedDataInterval", N, "0", minimum=0),
    _k("ConnectionTimeOut", N, "60", minimum=0),
    _k("ConnectorPhaseRotation", L, "0.RST,1.RST,2.RST"),
    _k("ConnectorPhaseRotationMaxLength", N, "10", readonly=True),
    _k("GetConfigurationMaxKeys", N, "100", readonly=True),
    _k("HeartbeatInterval", N, "300", minimum=0),
    _k("LightIntensity", N, "100", minimum=0, maximum=100),
    _k("LocalAuthorizeOffline", B, "true"),
    _k("LocalPreAuthorize", B, "false"),
    _k("MaxEnergyOnInvalidId", N, "0", minimum=0),
    _k("MeterValuesAlignedData", M, "Energy.Active.Import.Register"),
    _k("MeterValuesAlignedDataMaxLength", N, "8", readonly=True),
    _k("MeterValuesSampledData", M, "Energy.Active.Import.Register,Power.Active.Import"),
    _k("MeterValuesSampledDataMaxLength", N, "8", readonly=True),
    _k("MeterValueSampleInterval", N, "60", minimum=0),
    _k("MinimumStatusDuration", N, "0", minimum=0),
    _k("NumberOfConnectors", N, "2", readonly=True),
    _k("ResetRetries", N, "3", minimum=0),
    _k("StopTransactionOnEVSideDisconnect", B, "true"),
    _k("StopTransactionOnInvalidId", B, "true"),
    _k("StopTxnAlignedData", M, ""),
    _k("StopTxnAlignedDataMaxLength", N, "8", readonly=True),
    _k("StopTxnSampledData", M, "Energy.Active.Import.Register"),
    _k("StopTxnSampledDataMaxLength", N, "8", readonly=True),
    _k(
        "SupportedFeatureProfiles",
        L,
        "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
        readonly=True,
    ),
    _k("SupportedFeatureProfilesMaxLength", N, "6", readonly=True),
    _k("TransactionMessageAttempts", N, "3", minimum=1),
    _k("TransactionMessageRetryInterval", N, "60", minimum=0),
    _k("UnlockConnectorOnEVSideDisconnect", B, "true"),
    _k("WebSocketPingInterval", N, "0", minimum=0, reboot=False),
    # Local auth list management profile
    _k("LocalAuthListEnabled", B, "true"),
    _k("LocalAuthListMaxLength", N, "1000", readonly=True),
    _k("SendLocalListMaxLength", N, "100", readonly=True),
    # Reservation profile
    _k("ReserveConnectorZeroSupported", B, "false", readonly=True),
    # Smart charging profile
    _k("ChargeProfileMaxStackLevel", N, "10", readonly=True),
    _k("ChargingScheduleAllowedChargingRateUnit", L, "Current,Power", readonly=True),
    _k("ChargingScheduleMaxPeriods", N, "24", readonly=True),
    _k("ConnectorSwitch3to1PhaseSupported", B, "false", readonly=True),
    _k("MaxChargingProfilesInstalled", N, "20", readonly=True),
    # Security Whitepaper (edition 3) §7
    _k("CertificateSignedMaxChainSize", N, "10000", readonly=True),
    _k("CertificateStoreMaxLength", N, "10", readonly=True),
    _k("CpoName", S, ""),
    # Vendor-specific, to show the central system a reboot-required key
    _k("SimNetworkProfile", S, "default", reboot=True),
    # Vendor-specific: send SecurityEventNotification StartupOfTheDevice after each boot
    _k("SimSecurityEventOnBoot", B, "false"),
)

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _normalise(spec: KeySpec, value: str) -> str | None:
    """Canonical text for ``value``, or None when it is not acceptable for the key."""
    if len(value) > 500:
        return None
    if spec.type is KeyType.BOOL:
        low = value.strip().lower()
        if low in _TRUE:
            return "true"
        if low in _FALSE:
            return "false"
        return None
    if spec.type is KeyType.INT:
        try:
            number = int(value.strip())
        except ValueError:
            return None
        if spec.minimum is not None and number < spec.minimum:
            return None
        if spec.maximum is not None and number > spec.maximum:
            return None
        return str(number)
    if spec.type is KeyType.MEASURANDS:
        items = [item.strip() for item in value.split(",") if item.strip()]
        if any(item not in MEASURANDS for item in items):
            return None
        return ",".join(items)
    return value


class ConfigStore:
    """Known keys with their current values; unknown keys are NotSupported."""

    __slots__ = ("_specs", "_values")

    def __init__(
        self,
        initial: Mapping[str, str | int | bool | float] | None = None,
        *,
        specs: Iterable[KeySpec] = STANDARD_KEYS,
    ) -> None:
        self._specs: dict[str, KeySpec] = {spec.name: spec for spec in specs}
        self._values: dict[str, str] = {name: spec.default for name, spec in self._specs.items()}
        for key, value in (initial or {}).items():
            self.set(key, value)

    @staticmethod
    def text(value: str | int | bool | float) -> str:
        """The OCPP text of a Python value (booleans as ``true``/``false``)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def set(self, key: str, value: str | int | bool | float) -> None:
        """Set a value locally (scenario start values, firmware): read-only keys too."""
        spec = self._specs.get(key)
        if spec is None:
            raise KeyError(f"unknown configuration key {key!r}")
        normalised = _normalise(spec, self.text(value))
        if normalised is None:
            raise ValueError(f"invalid value {value!r} for configuration key {key!r}")
        self._values[key] = normalised

    def change(self, key: str, value: str) -> ConfigStatus:
        """Apply a ChangeConfiguration.req and say how it went."""
        spec = self._specs.get(key)
        if spec is None:
            return ConfigStatus.not_supported
        if spec.readonly:
            return ConfigStatus.rejected
        normalised = _normalise(spec, value)
        if normalised is None:
            return ConfigStatus.rejected
        self._values[key] = normalised
        return ConfigStatus.reboot_required if spec.reboot_required else ConfigStatus.accepted

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str) -> str:
        """The current text of a known key."""
        return self._values[key]

    def get_int(self, key: str) -> int:
        """A numeric key's value."""
        return int(self._values[key])

    def get_bool(self, key: str) -> bool:
        """A boolean key's value."""
        return self._values[key] == "true"

    def get_list(self, key: str) -> list[str]:
        """A comma-separated key's items."""
        return [item for item in self._values[key].split(",") if item]

    def spec(self, key: str) -> KeySpec:
        """The specification of a known key."""
        return self._specs[key]

    def report(self, keys: Iterable[str] | None = None) -> dict[str, list[object]]:
        """A GetConfiguration.conf payload for ``keys`` (all keys when None)."""
        known: list[object] = []
        unknown: list[object] = []
        names = list(self._values) if keys is None else list(keys)
        for name in names:
            spec = self._specs.get(name)
            if spec is None:
                unknown.append(name)
            else:
                known.append({"key": name, "readonly": spec.readonly, "value": self._values[name]})
        result: dict[str, list[object]] = {}
        if known:
            result["configurationKey"] = known
        if unknown:
            result["unknownKey"] = unknown
        return result


class ConfigurationCommands:
    """GetConfiguration and ChangeConfiguration; a changed key is passed on to whoever
    paces something by it, so a new interval takes effect at once."""

    def __init__(
        self,
        store: ConfigStore,
        *,
        after_reply: Callable[[Callable[[float], None]], None],
    ) -> None:
        """``after_reply`` defers work until the answer is sent (the changes' CALLs follow it)."""
        self._store = store
        self._after_reply = after_reply
        self._watchers: dict[str, Callable[[float], None]] = {}

    def watch(self, key: str, changed: Callable[[float], None]) -> None:
        """Call ``changed(now)`` after each accepted change of ``key``."""
        self._watchers[key] = changed

    def get_configuration(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetConfiguration: the keys asked for (all when none), unknown ones apart."""
        return self._store.report(payload.get("key"))

    def change_configuration(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ChangeConfiguration."""
        key = payload["key"]
        status = self._store.change(key, payload["value"])
        changed = self._watchers.get(key)
        if changed is not None and status in (ConfigStatus.accepted, ConfigStatus.reboot_required):
            self._after_reply(changed)
        return {"status": status.value}
