"""What a simulated charger is made of: its connectors, EV sessions and statuses, and the
records and answers it hands to callers. Plain data; the behaviour lives in the parts that
:class:`~simulators.station.Station` composes."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final

# OCPP 1.6 §7 ChargePointStatus and Reason, as the ocpp package has them.
from ocpp.v16.enums import ChargePointStatus as ConnectorStatus
from ocpp.v16.enums import Reason as StopReason

from .power import PowerCurve
from .scenario import PlannedSession

__all__ = [
    "ChargerInfo",
    "CloseMode",
    "Connector",
    "ConnectorStatus",
    "EvSpec",
    "FaultInfo",
    "IncomingCall",
    "Registration",
    "Reservation",
    "Session",
    "SessionRecord",
    "SessionState",
    "StopReason",
    "whole_wh",
]


class Registration(StrEnum):
    """Where the charger stands with the central system."""

    NONE = "None"
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class CloseMode(Enum):
    """How the shell should close the connection."""

    GRACEFUL = "graceful"  # websocket closing handshake
    ABRUPT = "abrupt"  # drop the TCP connection, as a network failure would


class SessionState(Enum):
    """Where an EV session is."""

    AUTHORIZING = "authorizing"
    CHARGING = "charging"  # a transaction is running (energy may or may not flow)
    STOPPED = "stopped"  # transaction stopped, EV still plugged
    REFUSED = "refused"  # not authorized, EV still plugged


_BOOT_LIMITS: Final = {
    "vendor": 20,
    "model": 20,
    "serial": 25,
    "firmware": 50,
    "meter_type": 25,
    "meter_serial": 25,
}


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    """What the charger says about itself in BootNotification."""

    identity: str
    vendor: str = "SimVendor"
    model: str = "SIM-AC22"
    serial: str = ""
    firmware: str = "1.0.0"
    meter_type: str = "SimMeter"
    meter_serial: str = ""

    def __post_init__(self) -> None:
        for name, limit in _BOOT_LIMITS.items():
            if len(getattr(self, name)) > limit:
                raise ValueError(f"{name} {getattr(self, name)!r} is longer than {limit} chars")
        if not self.vendor or not self.model:
            raise ValueError("vendor and model must not be empty")

    def boot_payload(self, firmware: str | None = None) -> dict[str, Any]:
        """A BootNotification.req payload."""
        payload: dict[str, Any] = {
            "chargePointVendor": self.vendor,
            "chargePointModel": self.model,
            "firmwareVersion": (firmware or self.firmware)[:50],
            "meterType": self.meter_type,
        }
        if self.serial:
            payload["chargePointSerialNumber"] = self.serial
            payload["chargeBoxSerialNumber"] = self.serial
        if self.meter_serial:
            payload["meterSerialNumber"] = self.meter_serial
        return payload


@dataclass(frozen=True, slots=True)
class EvSpec:
    """A vehicle: battery, onboard-charger power, state of charge on arrival and target."""

    capacity_wh: float = 60000.0
    max_power_w: float = 11000.0
    soc_start: float = 0.3
    soc_target: float = 1.0
    # Phases its onboard charger draws on (1 or 3), and the current per phase below which
    # it does not charge (IEC 61851-1: 6 A).
    phases: int = 3
    min_current_a: float = 6.0

    def curve(self) -> PowerCurve:
        """Its charging curve."""
        return PowerCurve(self.capacity_wh, self.max_power_w)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A finished transaction as the simulator saw it."""

    connector_id: int
    id_tag: str
    transaction_id: int | None
    meter_start: int
    meter_stop: int
    energy_wh: float  # integrated from the power curve
    started_at: float  # simulated POSIX time
    stopped_at: float
    reason: str
    soc_start: float
    soc_end: float
    ev: EvSpec
    remote: bool

    @property
    def metered_wh(self) -> int:
        """meterStop - meterStart, what a central system computes."""
        return self.meter_stop - self.meter_start


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A CALL the central system sent us, with what we answered."""

    unique_id: str
    action: str
    payload: dict[str, Any]
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str = ""


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """Why a connector is Faulted."""

    error_code: str
    vendor_error_code: str = ""
    info: str = ""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A ReserveNow in force."""

    reservation_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: float  # simulated POSIX time


class Session:
    """An EV on a connector, from plug-in (or remote start) to unplug."""

    __slots__ = (
        "connector_id",
        "curve",
        "energy_wh",
        "ev",
        "id_tag",
        "integrated_until",
        "limit_w",
        "meter_start",
        "meter_stop",
        "pending_profile",
        "power_w",
        "reason",
        "register_at_last_sample",
        "remote",
        "soc",
        "soc_target",
        "started_at",
        "state",
        "stopped_at",
        "transaction_id",
        "unplug_after",
    )

    def __init__(
        self, connector_id: int, id_tag: str, ev: EvSpec, unplug_after: float, remote: bool
    ) -> None:
        self.connector_id = connector_id
        self.id_tag = id_tag
        self.ev = ev
        self.curve = ev.curve()
        self.soc = ev.soc_start
        self.soc_target = ev.soc_target
        self.unplug_after = unplug_after
        self.remote = remote
        self.state = SessionState.AUTHORIZING
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.limit_w = 0.0
        self.integrated_until = 0.0  # loop time up to which energy_wh is counted
        self.register_at_last_sample = 0.0  # for Energy.Active.Import.Interval
        self.started_at = 0.0  # simulated POSIX time
        self.stopped_at = 0.0
        self.meter_start = 0
        self.meter_stop = 0
        self.transaction_id: int | None = None
        self.reason = ""
        self.pending_profile: dict[str, Any] | None = None  # a RemoteStart TxProfile


class Connector:
    """A connector (id 0 stands for the charger as a whole)."""

    __slots__ = (
        "fault",
        "id",
        "next_visit",
        "operative",
        "pending_inoperative",
        "plugged",
        "register_wh",
        "reported",
        "reservation",
        "session",
        "status",
        "status_fault",
        "visits",
    )

    def __init__(self, connector_id: int) -> None:
        self.id = connector_id
        self.status = ConnectorStatus.available
        self.status_fault: FaultInfo | None = None  # the fault reported with ``status``
        self.fault: FaultInfo | None = None
        self.reported: tuple[ConnectorStatus, FaultInfo | None] | None = None
        self.register_wh = 0.0
        self.plugged = False
        self.session: Session | None = None
        self.reservation: Reservation | None = None
        self.operative = True
        self.pending_inoperative = False
        self.visits: deque[PlannedSession] = deque()
        self.next_visit: PlannedSession | None = None


def whole_wh(register: float) -> int:
    """A register reading in whole Wh (robust to float noise just below an integer)."""
    return int(register + 1e-6)
