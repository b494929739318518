"""One charger's behaviour as a sans-I/O state machine.

:class:`Station` never touches a socket or the event loop. The I/O shell (see
:mod:`simulators.charger`) feeds it events with the current loop time:

- :meth:`Station.on_connected`, :meth:`Station.on_connect_failed`,
  :meth:`Station.on_disconnected`: connection changes;
- :meth:`Station.on_frame`: a websocket text message;
- :meth:`Station.on_timer`: :meth:`Station.next_deadline` was reached;

and after each event sends what is in :attr:`Station.outbox`, closes the connection when
:attr:`Station.close_request` says so, and (re)connects when
:meth:`Station.wants_connection` is true. Every step ends with the outbound queue being
pumped: at most one CALL of ours is outstanding at a time (OCPP-J §4.1.1), while CALLs
from the central system are answered as they come.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from functools import partial
from typing import Any, Final

from .clock import Clock, iso
from .config import ConfigStore
from .ocppj import (
    SECURITY_ACTIONS,
    Call,
    CallError,
    CallErrorFrame,
    CallResult,
    CallTimeout,
    ConnectionLost,
    ErrorCode,
    dump_call,
    dump_callerror,
    dump_callresult,
    is_valid_request,
    is_valid_response,
    parse_frame,
    validate_request,
    validate_response,
)
from .power import PowerCurve
from .scenario import ChargerPlan, FaultKind, PlannedFault, PlannedSession
from .security import (
    CertificateStore,
    CertificateUse,
    ChargerKeys,
    is_base64_signature,
    is_pem_certificate,
)
from .smart import Electrical, ProfileStatus, ProfileStore, RateUnit, parse_time
from .stats import Stats

__all__ = [
    "ChargerInfo",
    "CloseMode",
    "ConnectorStatus",
    "EvSpec",
    "IncomingCall",
    "Registration",
    "SessionRecord",
    "SessionState",
    "Station",
    "StopReason",
]

UNDELIVERED_TRANSACTION: Final = -1
MIN_PERIOD: Final = 0.01  # real seconds: a floor for periodic timers at extreme speeds
Callback = Callable[[dict[str, Any] | None, CallError | None], None]


class ConnectorStatus(StrEnum):
    """ChargePointStatus."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


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


class StopReason(StrEnum):
    """StopTransaction reason."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    POWER_LOSS = "PowerLoss"
    DE_AUTHORIZED = "DeAuthorized"
    UNLOCK_COMMAND = "UnlockCommand"
    REBOOT = "Reboot"
    OTHER = "Other"


class SessionState(Enum):
    """Where an EV session is."""

    AUTHORIZING = "authorizing"
    CHARGING = "charging"  # a transaction is running (energy may or may not flow)
    STOPPED = "stopped"  # transaction stopped, EV still plugged
    REFUSED = "refused"  # not authorized, EV still plugged


class FirmwareStatus(StrEnum):
    """FirmwareStatusNotification status."""

    IDLE = "Idle"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    INSTALLING = "Installing"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class DiagnosticsStatus(StrEnum):
    """DiagnosticsStatusNotification status."""

    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"


class LogStatus(StrEnum):
    """LogStatusNotification status (UploadLogStatusEnumType, SecWP §6.19)."""

    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILURE = "UploadFailure"


class SignedFirmwareStatus(StrEnum):
    """SignedFirmwareStatusNotification status (FirmwareStatusEnumType, SecWP §6.8)."""

    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALLED = "Installed"


# SignedFirmwareStatusNotification states after which the update is over.
_SIGNED_FIRMWARE_ENDS: Final = frozenset(
    {
        SignedFirmwareStatus.IDLE,
        SignedFirmwareStatus.DOWNLOAD_FAILED,
        SignedFirmwareStatus.INVALID_SIGNATURE,
        SignedFirmwareStatus.INSTALLED,
    }
)


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
        "last_real",
        "last_sample_wh",
        "limit_w",
        "meter_start",
        "meter_stop",
        "pending_profile",
        "power_w",
        "reason",
        "remote",
        "soc",
        "start_sim",
        "state",
        "stop_sim",
        "target",
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
        self.target = ev.soc_target
        self.unplug_after = unplug_after
        self.remote = remote
        self.state = SessionState.AUTHORIZING
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.limit_w = 0.0
        self.last_real = 0.0
        self.last_sample_wh = 0.0
        self.start_sim = 0.0
        self.stop_sim = 0.0
        self.meter_start = 0
        self.meter_stop = 0
        self.transaction_id: int | None = None
        self.reason = ""
        self.pending_profile: dict[str, Any] | None = None


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
        self.status = ConnectorStatus.AVAILABLE
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


class Outbound:
    """A CALL of ours, queued or in flight."""

    __slots__ = (
        "action",
        "attempts",
        "callback",
        "not_before",
        "payload",
        "sent_at",
        "session",
        "transactional",
        "unique_id",
    )

    def __init__(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None,
        transactional: bool,
        session: Session | None,
    ) -> None:
        self.action = action
        self.payload = payload
        self.callback = callback
        self.transactional = transactional
        self.session = session
        self.attempts = 0
        self.not_before = 0.0
        self.sent_at = 0.0
        self.unique_id = ""


def _wh(register: float) -> int:
    """A register reading in whole Wh (robust to float noise just below an integer)."""
    return int(register + 1e-6)


def _firmware_version_from(location: str, current: str) -> str:
    name = location.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".bin", ".img", ".tar.gz", ".zip", ".fw"):
        name = name.removesuffix(suffix)
    name = name.strip()
    return (name or f"{current}-new")[:50]


class Station:
    """A simulated OCPP 1.6 charge point, driven by events and the loop time."""

    def __init__(
        self,
        info: ChargerInfo,
        connectors: int = 2,
        *,
        clock: Clock,
        stats: Stats | None = None,
        config: Mapping[str, str | int | bool | float] | None = None,
        electrical: Electrical | None = None,
        plan: ChargerPlan | None = None,
        default_ev: EvSpec | None = None,
        remote_dwell: float | None = None,
        remote_unplug_after: float = 60.0,
        auto_boot: bool = True,
        auto_reconnect: bool = True,
        call_timeout: float = 30.0,
        reconnect_base: float = 1.0,
        reconnect_cap: float = 30.0,
        drain_timeout: float = 10.0,
        validate_outbound: bool = False,
        keep_raw: bool = False,
        seed: int | str | None = None,
        security_extension: bool = True,
    ) -> None:
        if connectors < 1:
            raise ValueError("a charger has at least one connector")
        self.info = info
        self.n = connectors
        self.clock = clock
        self.stats = stats if stats is not None else Stats()
        initial: dict[str, str | int | bool | float] = {"NumberOfConnectors": connectors}
        initial.update(config or {})
        self.config = ConfigStore(initial)
        self.electrical = electrical or Electrical()
        self.profiles = ProfileStore(
            connectors,
            self.electrical,
            max_stack=self.config.get_int("ChargeProfileMaxStackLevel"),
            max_periods=self.config.get_int("ChargingScheduleMaxPeriods"),
            max_profiles=self.config.get_int("MaxChargingProfilesInstalled"),
        )
        self.connectors = [Connector(i) for i in range(connectors + 1)]
        self.plan = plan
        if plan is not None:
            for c, start in zip(self.connectors[1:], plan.meter_start_wh, strict=False):
                c.register_wh = start
        self.default_ev = default_ev or EvSpec()
        self.remote_dwell = remote_dwell
        self.remote_unplug_after = remote_unplug_after
        self.auto_boot = auto_boot
        self.auto_reconnect = auto_reconnect
        self.call_timeout = call_timeout
        self.reconnect_base = reconnect_base
        self.reconnect_cap = reconnect_cap
        self.drain_timeout = drain_timeout
        self.validate_outbound = validate_outbound
        self.keep_raw = keep_raw
        self.rng = random.Random(seed if seed is not None else info.identity)
        self.firmware = info.firmware

        # what the shell acts on
        self.outbox: deque[bytes] = deque()
        self.raw_inbox: deque[bytes] = deque()
        self.close_request: CloseMode | None = None
        self.ping_requested = False  # the shell sends a websocket ping and clears this
        self.connected = False
        self.want_connected = False
        self.connect_at = 0.0
        self.done = False

        # protocol state
        self.registration = Registration.NONE
        self.boot_required = auto_boot
        self.completed: list[SessionRecord] = []
        self.local_list: dict[str, dict[str, Any]] = {}
        self.local_list_version = 0
        self.auth_cache: dict[str, dict[str, Any]] = {}
        self.fw_status = FirmwareStatus.IDLE
        self.diag_status = DiagnosticsStatus.IDLE
        # Security Whitepaper (edition 3); without it its actions are NotSupported.
        self.security_extension = security_extension
        self.certificates = CertificateStore(self.config.get_int("CertificateStoreMaxLength"))
        self.keys = ChargerKeys()
        self.log_status = LogStatus.IDLE
        self.signed_fw_status = SignedFirmwareStatus.IDLE
        self.incoming_hook: Callable[[IncomingCall], None] | None = None

        self._now = 0.0
        self._timers: dict[str, float] = {}
        self._queue: deque[Outbound] = deque()
        self._inflight: Outbound | None = None
        self._uid = 0
        self._raw_ids: set[str] = set()
        self._timed_out: deque[str] = deque(maxlen=8)  # ids whose answer may still come late
        self._raw_used = False
        self._after: list[Callable[[float], None]] = []
        self._attempt = 0
        self._powered = True
        self._offline_until = 0.0
        self._rebooting = False
        self._soft_reset_deadline: float | None = None
        self._stopping = False
        self._stop_deadline = math.inf
        self._fw_location = ""
        self._diag_ok = True
        self._log_request: int | None = None
        self._log_ok = True
        self._sfw_request: int | None = None
        self._sfw: dict[str, Any] = {}
        self._script: list[tuple[float, PlannedSession | PlannedFault]] = []
        self._script_pos = 0
        if not auto_boot:
            # scripted use: nothing to report until the script says so
            for c in self.connectors:
                c.reported = (c.status, c.status_fault)

    # ------------------------------------------------------------------ shell interface

    @property
    def identity(self) -> str:
        """The charge point identity."""
        return self.info.identity

    @property
    def stopping(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._stopping

    @property
    def charging(self) -> int:
        """Connectors with a running transaction."""
        return sum(
            1 for c in self.connectors if c.session and c.session.state is SessionState.CHARGING
        )

    @property
    def queued(self) -> int:
        """CALLs waiting to be sent (the one in flight not included)."""
        return len(self._queue)

    @property
    def queued_transactional(self) -> int:
        """Transaction messages waiting, including one in flight."""
        waiting = sum(1 for ob in self._queue if ob.transactional)
        return waiting + (1 if self._inflight and self._inflight.transactional else 0)

    @property
    def finished_script(self) -> bool:
        """Whether every scripted event has happened and every EV has left."""
        if self._script_pos < len(self._script):
            return False
        for c in self.connectors[1:]:
            if c.session is not None or c.plugged or c.next_visit or c.visits or c.fault:
                return False
        return not self._queue and self._inflight is None and self.connected

    def wants_connection(self, now: float) -> bool:
        """Whether the shell should open the connection now."""
        return (
            self.want_connected
            and self._powered
            and not self.connected
            and not self.done
            and now >= self.connect_at
            and now >= self._offline_until
        )

    def next_deadline(self) -> float | None:
        """Loop time of the next timer (or connection attempt), None if nothing is due."""
        deadline = min(self._timers.values()) if self._timers else None
        if not self.connected and self.want_connected and self._powered and not self.done:
            at = max(self.connect_at, self._offline_until)
            deadline = at if deadline is None else min(deadline, at)
        return deadline

    def begin(self, now: float) -> None:
        """Start the scripted life: schedule the first connection and the plan's events."""
        self._now = now
        self.want_connected = True
        plan = self.plan
        if plan is None:
            self.connect_at = now
            return
        self.connect_at = self._at(plan.connect_at)
        script: list[tuple[float, PlannedSession | PlannedFault]] = []
        for c, visits in zip(self.connectors[1:], plan.sessions, strict=False):
            c.visits = deque(visits)
            if c.visits:
                first = c.visits.popleft()
                c.next_visit = first
                script.append((self._at(first.arrival), first))
        script.extend((self._at(f.at), f) for f in plan.faults)
        script.sort(key=lambda item: item[0])
        self._script = script
        self._script_pos = 0
        if script:
            self._timers["script"] = script[0][0]

    def _at(self, offset: float) -> float:
        """Loop time of a scenario offset (simulated seconds from the run start)."""
        return self.clock.real0 + offset / self.clock.speed

    def on_connected(self, now: float, subprotocol: str | None = "ocpp1.6") -> None:
        """The websocket is open."""
        self._now = now
        self.connected = True
        self.close_request = None
        self._attempt = 0
        self.stats.connects += 1
        if subprotocol != "ocpp1.6":
            self.stats.protocol_error(self.identity, f"server chose subprotocol {subprotocol!r}")
        self._schedule_ping(now)
        if self.boot_required:
            self._enqueue_boot()
        else:
            self._report_changes()
            self._schedule_heartbeat(now)
            self._schedule_aligned(now)
        self._end_step(now)

    def on_connect_failed(self, now: float, reason: str) -> None:
        """A connection attempt failed; try again after a backoff."""
        self._now = now
        self.stats.connect_failures += 1
        if self.stats.connect_failures <= 5:
            self.stats.note(self.identity, f"connect failed: {reason}")
        self._attempt += 1
        self.connect_at = now + self._backoff()
        if self._stopping and now >= self._stop_deadline:
            self.done = True

    def _backoff(self) -> float:
        """Exponential backoff with jitter, capped."""
        ceiling = min(
            self.reconnect_cap, self.reconnect_base * math.pow(2.0, min(self._attempt, 30))
        )
        return ceiling / 2.0 + self.rng.uniform(0.0, ceiling / 2.0)

    def on_disconnected(self, now: float) -> None:
        """The websocket closed (either side, any reason)."""
        self._now = now
        if not self.connected:
            return
        self.connected = False
        self.close_request = None
        self.stats.disconnects += 1
        self.ping_requested = False
        for name in ("timeout", "hb", "retry", "boot", "aligned", "ping"):
            self._timers.pop(name, None)
        lost: list[Outbound] = []
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            if inflight.transactional:
                inflight.attempts = max(0, inflight.attempts - 1)
                self._queue.appendleft(inflight)
            else:
                lost.append(inflight)
        kept: deque[Outbound] = deque()
        for ob in self._queue:
            (kept if ob.transactional else lost).append(ob)
        self._queue = kept
        self._raw_ids.clear()
        if self._rebooting:
            self._reboot(now)
        elif self._stopping:
            if not self._queue or now >= self._stop_deadline or not self._powered:
                self.done = True
            else:
                self.connect_at = now + self._backoff()
        elif self.auto_reconnect:
            self.connect_at = now + self._backoff()
        else:
            self.want_connected = False
        for ob in lost:
            if ob.callback is not None:
                ob.callback(None, ConnectionLost())
        self._end_step(now)

    def on_frame(self, data: bytes | str, now: float) -> None:
        """A websocket message arrived."""
        self._now = now
        self.stats.messages_received += 1
        frame = parse_frame(data)
        if isinstance(frame, Call):
            self._on_call(frame, now)
        elif isinstance(frame, CallResult):
            self._on_result(frame, now)
        elif isinstance(frame, CallErrorFrame):
            self._on_callerror(frame, now)
        else:
            self._on_bad_frame(frame, data)
        self._end_step(now)

    def on_timer(self, now: float) -> None:
        """Fire every timer that is due."""
        self._now = now
        timers = self._timers
        due = sorted((at, name) for name, at in timers.items() if at <= now)
        for at, name in due:
            if timers.get(name) != at:
                continue
            del timers[name]
            kind, _, arg = name.partition(":")
            _TIMER_HANDLERS[kind](self, int(arg) if arg else 0, now)
        self._end_step(now)

    def shutdown(self, now: float, reason: StopReason = StopReason.LOCAL) -> None:
        """End of the run: stop open transactions cleanly, drain the queue, then close."""
        self._now = now
        if self._stopping:
            return
        self._stopping = True
        self._stop_deadline = now + self.drain_timeout
        self._timers = {k: v for k, v in self._timers.items() if k in ("timeout", "retry", "boot")}
        self._timers["shutdown"] = self._stop_deadline
        for c in self.connectors[1:]:
            self._stop(c, now, reason)
        if not self.connected and (not self._queue or not self._powered):
            self.done = True
        self._end_step(now)

    # ------------------------------------------------------------------ library interface

    def call(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None,
        now: float,
        *,
        transactional: bool = False,
    ) -> None:
        """Queue one of our CALLs (raw; no simulated state changes)."""
        self._now = now
        self._call(action, payload, callback, transactional=transactional)
        self._end_step(now)

    def send_raw(self, data: bytes, now: float) -> None:
        """Send an arbitrary message; answers to it go to :attr:`raw_inbox`."""
        self._now = now
        self._raw_used = True
        frame = parse_frame(data)
        if isinstance(frame, Call):
            self._raw_ids.add(frame.unique_id)
        self.outbox.append(data)
        self.stats.messages_sent += 1

    def connect_now(self, now: float) -> None:
        """Ask the shell to connect as soon as possible."""
        self._now = now
        self.want_connected = True
        self.connect_at = now
        self._offline_until = min(self._offline_until, now)

    def disconnect(self, now: float, *, abrupt: bool = True, reconnect: bool = False) -> None:
        """Drop the connection (by default like a network failure), without reconnecting."""
        self._now = now
        if not reconnect:
            self.want_connected = False
        if self.connected:
            self.close_request = CloseMode.ABRUPT if abrupt else CloseMode.GRACEFUL

    def plug_in(
        self,
        connector_id: int,
        id_tag: str,
        now: float,
        *,
        ev: EvSpec | None = None,
        authorize: bool = True,
        dwell: float | None = None,
        unplug_after: float = 60.0,
    ) -> bool:
        """An EV arrives, the driver badges ``id_tag``: Authorize, StartTransaction, charge."""
        self._now = now
        c = self.connectors[connector_id]
        if not self._free_for(c, id_tag) or c.plugged:
            return False
        self._plug_and_start(
            c, now, id_tag, ev or self.default_ev, authorize, dwell, unplug_after, remote=False
        )
        self._end_step(now)
        return True

    def stop_session(
        self, connector_id: int, now: float, reason: StopReason = StopReason.LOCAL
    ) -> bool:
        """The driver ends the transaction (the EV stays plugged)."""
        self._now = now
        c = self.connectors[connector_id]
        stopped = self._stop(c, now, reason)
        self._end_step(now)
        return stopped

    def unplug(self, connector_id: int, now: float) -> None:
        """The EV leaves (EVDisconnected if a transaction was still running)."""
        self._now = now
        self._unplug(self.connectors[connector_id], now)
        self._end_step(now)

    def inject_fault(self, fault: PlannedFault, now: float) -> None:
        """Run a scenario fault now."""
        self._now = now
        self._fault(fault, now)
        self._end_step(now)

    def session(self, connector_id: int) -> Session | None:
        """The session on a connector, if any."""
        return self.connectors[connector_id].session

    def status_of(self, connector_id: int) -> ConnectorStatus:
        """A connector's current status."""
        return self.connectors[connector_id].status

    # ------------------------------------------------------------------ outbound queue

    def _call(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None = None,
        *,
        transactional: bool = False,
        session: Session | None = None,
        front: bool = False,
    ) -> None:
        if not transactional and not self.connected:
            if callback is not None:
                callback(None, ConnectionLost("not connected"))
            return
        ob = Outbound(action, payload, callback, transactional, session)
        if front:
            self._queue.appendleft(ob)
        else:
            self._queue.append(ob)

    def _enqueue_boot(self) -> None:
        if any(ob.action == "BootNotification" for ob in self._queue):
            return
        if self._inflight is not None and self._inflight.action == "BootNotification":
            return
        self._call(
            "BootNotification", self.info.boot_payload(self.firmware), self._on_boot, front=True
        )

    def _end_step(self, now: float) -> None:
        while self._after:
            pending, self._after = self._after, []
            for action in pending:
                action(now)
        self._pump(now)
        if self._soft_reset_deadline is not None:
            self._check_soft_reset(now)
        if self._stopping and not self.done:
            self._check_shutdown(now)

    def _pump(self, now: float) -> None:
        if not self.connected or self._inflight is not None or self.close_request is not None:
            return
        queue = self._queue
        while queue:
            ob = queue[0]
            if self.boot_required and ob.action != "BootNotification":
                return
            if ob.not_before > now:
                self._timers["retry"] = ob.not_before
                return
            queue.popleft()
            payload = ob.payload
            session = ob.session
            if session is not None and ob.action != "StartTransaction":
                # Errata §3.18: messages of a transaction whose Start never got through carry -1.
                tid = session.transaction_id
                payload["transactionId"] = tid if tid is not None else UNDELIVERED_TRANSACTION
            self._uid += 1
            ob.unique_id = str(self._uid)
            ob.sent_at = now
            ob.attempts += 1
            if self.validate_outbound and not is_valid_request(ob.action, payload):
                violation = validate_request(ob.action, payload)
                self.stats.protocol_error(
                    self.identity,
                    f"sent invalid {ob.action}: {violation.description if violation else '?'}",
                )
            self.outbox.append(dump_call(ob.unique_id, ob.action, payload))
            self.stats.messages_sent += 1
            self.stats.calls_sent += 1
            self._inflight = ob
            self._timers["timeout"] = now + self.call_timeout
            return

    def _finish(self, ob: Outbound, result: dict[str, Any] | None, error: CallError | None) -> None:
        if ob.callback is not None:
            ob.callback(result, error)

    def _retry_or_fail(self, ob: Outbound, now: float, error: CallError) -> None:
        if ob.transactional:
            attempts = self.config.get_int("TransactionMessageAttempts")
            if ob.attempts < attempts:
                interval = self.config.get_int("TransactionMessageRetryInterval")
                ob.not_before = self.clock.after(now, interval * ob.attempts)
                self._queue.appendleft(ob)
                self.stats.retries += 1
                return
            self.stats.dropped_messages += 1
            self.stats.note(self.identity, f"{ob.action} dropped after {ob.attempts} attempts")
        self._finish(ob, None, error)

    def _on_result(self, frame: CallResult, now: float) -> None:
        ob = self._inflight
        if ob is None or frame.unique_id != ob.unique_id:
            self._unmatched(frame.unique_id, "CALLRESULT", frame)
            return
        self._inflight = None
        self._timers.pop("timeout", None)
        self.stats.record_latency(now - ob.sent_at)
        payload = frame.payload
        if not is_valid_response(ob.action, payload):
            violation = validate_response(ob.action, payload)
            self.stats.protocol_error(
                self.identity,
                f"invalid {ob.action} answer: {violation.description if violation else '?'}",
            )
        self._finish(ob, payload, None)

    def _on_callerror(self, frame: CallErrorFrame, now: float) -> None:
        ob = self._inflight
        if ob is None or frame.unique_id != ob.unique_id:
            self._unmatched(frame.unique_id, "CALLERROR", frame)
            return
        self._inflight = None
        self._timers.pop("timeout", None)
        self.stats.record_latency(now - ob.sent_at)
        self.stats.callerrors_received += 1
        self.stats.note(
            self.identity, f"CALLERROR for {ob.action}: {frame.code} {frame.description}"
        )
        self._retry_or_fail(ob, now, CallError(frame.code, frame.description, frame.details))

    def _unmatched(self, unique_id: str, kind: str, frame: object) -> None:
        if unique_id in self._timed_out:
            self._timed_out.remove(unique_id)
            self.stats.late_answers += 1  # already counted as a timeout
            return
        if unique_id in self._raw_ids or (self.keep_raw and self._raw_used):
            self._raw_ids.discard(unique_id)
            self.raw_inbox.append(self._raw_bytes(frame))
            return
        self.stats.protocol_error(self.identity, f"{kind} with unexpected id {unique_id!r}")

    @staticmethod
    def _raw_bytes(frame: object) -> bytes:
        if isinstance(frame, CallResult):
            return dump_callresult(frame.unique_id, frame.payload)
        if isinstance(frame, CallErrorFrame):
            return dump_callerror(frame.unique_id, frame.code, frame.description, frame.details)
        return b""

    def _on_bad_frame(self, frame: Any, data: bytes | str) -> None:
        if frame.unique_id is not None:
            self._reply_error(frame.unique_id, frame.code, frame.reason)
        if self.keep_raw and self._raw_used:
            self.raw_inbox.append(data.encode() if isinstance(data, str) else data)
            return
        self.stats.protocol_error(self.identity, f"bad frame from central system: {frame.reason}")

    def _t_timeout(self, _arg: int, now: float) -> None:
        ob = self._inflight
        if ob is None:
            return
        self._inflight = None
        self._timed_out.append(ob.unique_id)
        self.stats.timeouts += 1
        self.stats.note(self.identity, f"no answer to {ob.action} in {self.call_timeout:g} s")
        self._retry_or_fail(ob, now, CallTimeout(f"no answer to {ob.action}"))

    # ------------------------------------------------------------------ inbound CALLs

    def _reply(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        if self.validate_outbound and not is_valid_response(action, payload):
            violation = validate_response(action, payload)
            self.stats.protocol_error(
                self.identity,
                f"answered {action} invalidly: {violation.description if violation else '?'}",
            )
        self.outbox.append(dump_callresult(unique_id, payload))
        self.stats.messages_sent += 1

    def _reply_error(self, unique_id: str, code: ErrorCode, description: str) -> None:
        self.outbox.append(dump_callerror(unique_id, code.value, description))
        self.stats.messages_sent += 1
        self.stats.callerrors_sent += 1

    def _on_call(self, frame: Call, now: float) -> None:
        self.stats.calls_received += 1
        action, payload = frame.action, frame.payload
        handler = _CALL_HANDLERS.get(action)
        if action in SECURITY_ACTIONS and not self.security_extension:
            handler = None
        if handler is None:
            code = (
                ErrorCode.NOT_SUPPORTED if action in SECURITY_ACTIONS else ErrorCode.NOT_IMPLEMENTED
            )
            description = f"{action} is not supported by this charger"
            self._reply_error(frame.unique_id, code, description)
            self._record(frame, None, code.value, description)
            return
        violation = validate_request(action, payload)
        if violation is not None:
            self.stats.protocol_error(
                self.identity, f"invalid {action} from central system: {violation.description}"
            )
            self._reply_error(frame.unique_id, violation.code, violation.description)
            self._record(frame, None, violation.code.value, violation.description)
            return
        try:
            response = handler(self, payload, now)
        except Exception as exc:  # a simulator bug must not kill the charger
            self._after.clear()
            self.stats.protocol_error(self.identity, f"{action} handler failed: {exc!r}")
            self._reply_error(frame.unique_id, ErrorCode.INTERNAL_ERROR, str(exc)[:255])
            self._record(frame, None, ErrorCode.INTERNAL_ERROR.value, str(exc))
            return
        self._reply(frame.unique_id, action, response)
        self._record(frame, response, None, "")

    def _record(
        self, frame: Call, response: dict[str, Any] | None, code: str | None, description: str
    ) -> None:
        hook = self.incoming_hook
        if hook is not None:
            hook(
                IncomingCall(
                    frame.unique_id, frame.action, frame.payload, response, code, description
                )
            )

    # -- Core profile

    def _h_reset(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        hard = payload["type"] == "Hard"
        self._after.append(lambda t: self._begin_reset(hard, t))
        return {"status": "Accepted"}

    def _h_remote_start(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        tag = payload["idTag"]
        profile = payload.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        if self._stopping or not self._powered:
            return {"status": "Rejected"}
        connector_id = payload.get("connectorId")
        target: Connector | None = None
        if connector_id is not None:
            if 1 <= connector_id <= self.n and self._free_for(self.connectors[connector_id], tag):
                target = self.connectors[connector_id]
        else:
            target = next((c for c in self.connectors[1:] if self._free_for(c, tag)), None)
        if target is None:
            return {"status": "Rejected"}
        chosen = target

        def start(t: float) -> None:
            if chosen.session is not None:  # a refused or finished visit: replaced
                self._timers.pop(f"unplug:{chosen.id}", None)
                chosen.session = None
            authorize = self.config.get_bool("AuthorizeRemoteTxRequests")
            self._plug_and_start(
                chosen,
                t,
                tag,
                self.default_ev,
                authorize,
                self.remote_dwell,
                self.remote_unplug_after,
                remote=True,
                profile=profile,
            )

        self._after.append(start)
        return {"status": "Accepted"}

    def _h_remote_stop(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        transaction_id = payload["transactionId"]
        for c in self.connectors[1:]:
            s = c.session
            if s is not None and s.state is SessionState.CHARGING:
                if s.transaction_id == transaction_id:
                    self._after.append(partial(self._remote_stop, c))
                    return {"status": "Accepted"}
        return {"status": "Rejected"}

    def _remote_stop(self, c: Connector, now: float) -> None:
        s = c.session
        if s is None:
            return
        self._stop(c, now, StopReason.REMOTE)
        if f"depart:{c.id}" not in self._timers:
            self._timers[f"unplug:{c.id}"] = self.clock.after(now, s.unplug_after)

    def _h_unlock(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if not 1 <= connector_id <= self.n:
            return {"status": "NotSupported"}
        c = self.connectors[connector_id]

        def unlock(t: float) -> None:
            self._stop(c, t, StopReason.UNLOCK_COMMAND)
            if c.plugged:
                self._timers.pop(f"depart:{c.id}", None)
                self._timers[f"unplug:{c.id}"] = self.clock.after(t, 5.0)

        self._after.append(unlock)
        return {"status": "Unlocked"}

    def _h_change_availability(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        operative = payload["type"] == "Operative"
        if not 0 <= connector_id <= self.n:
            return {"status": "Rejected"}
        targets = self.connectors if connector_id == 0 else [self.connectors[connector_id]]
        scheduled = False
        for c in targets:
            if operative:
                c.operative = True
                c.pending_inoperative = False
            elif c.session is not None and c.session.state is SessionState.CHARGING:
                c.pending_inoperative = True
                scheduled = True
            else:
                c.operative = False
        self._after.append(lambda t: self._refresh_all())
        return {"status": "Scheduled" if scheduled else "Accepted"}

    def _h_get_configuration(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        return self.config.report(payload.get("key"))

    def _h_change_configuration(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        key = payload["key"]
        status = self.config.change(key, payload["value"])
        if status.value in ("Accepted", "RebootRequired"):
            self._after.append(lambda t: self._config_changed(key, t))
        return {"status": status.value}

    def _config_changed(self, key: str, now: float) -> None:
        if key == "HeartbeatInterval":
            self._schedule_heartbeat(now)
        elif key == "MeterValueSampleInterval":
            for c in self.connectors[1:]:
                self._schedule_meter(c, now)
        elif key == "ClockAlignedDataInterval":
            self._schedule_aligned(now)
        elif key == "WebSocketPingInterval":
            self._schedule_ping(now)

    def _schedule_ping(self, now: float) -> None:
        """WebSocketPingInterval is a network timer: real seconds, not simulated ones."""
        interval = self.config.get_int("WebSocketPingInterval")
        if interval > 0 and self.connected:
            self._timers["ping"] = now + interval
        else:
            self._timers.pop("ping", None)

    def _t_ping(self, _arg: int, now: float) -> None:
        if self.connected:
            self.ping_requested = True
        self._schedule_ping(now)

    def _h_clear_cache(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        self.auth_cache.clear()
        return {"status": "Accepted"}

    def _h_data_transfer(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        if payload["vendorId"] != self.info.vendor:
            return {"status": "UnknownVendorId"}
        message_id = payload.get("messageId")
        if message_id not in (None, "Echo"):
            return {"status": "UnknownMessageId"}
        response: dict[str, Any] = {"status": "Accepted"}
        if "data" in payload:
            response["data"] = payload["data"]
        return response

    # -- Remote trigger

    def _h_trigger(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        message = payload["requestedMessage"]
        connector_id = payload.get("connectorId")
        if connector_id is not None and not 0 <= connector_id <= self.n:
            return {"status": "Rejected"}
        if message == "BootNotification":
            self._after.append(
                lambda t: self._call(
                    "BootNotification", self.info.boot_payload(self.firmware), self._on_boot
                )
            )
        elif message == "Heartbeat":
            self._after.append(lambda t: self._call("Heartbeat", {}))
        elif message == "FirmwareStatusNotification":
            self._after.append(lambda t: self._notify_firmware())
        elif message == "DiagnosticsStatusNotification":
            self._after.append(lambda t: self._notify_diagnostics())
        elif message == "StatusNotification":
            first = 0 if connector_id is None else connector_id
            last = self.n if connector_id is None else connector_id

            def statuses(t: float) -> None:
                for i in range(first, last + 1):
                    self._notify_status(self.connectors[i], force=True)

            self._after.append(statuses)
        elif message == "MeterValues":
            first = 1 if connector_id is None else connector_id
            last = self.n if connector_id is None else connector_id

            def meters(t: float) -> None:
                for i in range(first, last + 1):
                    self._triggered_meter(i, t)

            self._after.append(meters)
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def _triggered_meter(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        self._advance(c, now)
        measurands = self.config.get_list("MeterValuesSampledData")
        self._send_meter(c, now, "Trigger", measurands, transactional=False)

    # -- Reservation

    def _h_reserve_now(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if connector_id == 0 and not self.config.get_bool("ReserveConnectorZeroSupported"):
            return {"status": "Rejected"}
        if not 1 <= connector_id <= self.n:
            return {"status": "Rejected"}
        c = self.connectors[connector_id]
        reservation_id = payload["reservationId"]
        if c.fault or self.connectors[0].fault:
            return {"status": "Faulted"}
        if not c.operative or not self.connectors[0].operative:
            return {"status": "Unavailable"}
        if (
            c.session is not None
            or c.plugged
            or (c.reservation is not None and c.reservation.reservation_id != reservation_id)
        ):
            return {"status": "Occupied"}
        try:
            expiry = parse_time(payload["expiryDate"])
        except ValueError:
            return {"status": "Rejected"}
        for other in self.connectors[1:]:
            if other.reservation and other.reservation.reservation_id == reservation_id:
                other.reservation = None
                self._timers.pop(f"reserve:{other.id}", None)
                self._after.append(partial(self._refresh_later, other))
        c.reservation = Reservation(
            reservation_id, payload["idTag"], payload.get("parentIdTag"), expiry
        )
        self._timers[f"reserve:{c.id}"] = max(now, self.clock.real(expiry))
        self._after.append(partial(self._refresh_later, c))
        return {"status": "Accepted"}

    def _h_cancel_reservation(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        reservation_id = payload["reservationId"]
        for c in self.connectors[1:]:
            if c.reservation and c.reservation.reservation_id == reservation_id:
                c.reservation = None
                self._timers.pop(f"reserve:{c.id}", None)
                self._after.append(partial(self._refresh_later, c))
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    def _t_reserve(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        c.reservation = None
        self._refresh(c)

    # -- Local authorization list

    def _h_send_local_list(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.config.get_bool("LocalAuthListEnabled"):
            return {"status": "NotSupported"}
        entries = payload.get("localAuthorizationList", [])
        if len(entries) > self.config.get_int("SendLocalListMaxLength"):
            return {"status": "Failed"}
        version = payload["listVersion"]
        if payload["updateType"] == "Full":
            new = {e["idTag"]: e["idTagInfo"] for e in entries if "idTagInfo" in e}
        else:
            if version <= self.local_list_version:
                return {"status": "VersionMismatch"}
            new = dict(self.local_list)
            for e in entries:
                if "idTagInfo" in e:
                    new[e["idTag"]] = e["idTagInfo"]
                else:
                    new.pop(e["idTag"], None)
        if len(new) > self.config.get_int("LocalAuthListMaxLength"):
            return {"status": "Failed"}
        self.local_list = new
        self.local_list_version = version
        return {"status": "Accepted"}

    def _h_get_local_list_version(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.config.get_bool("LocalAuthListEnabled"):
            return {"listVersion": -1}
        return {"listVersion": self.local_list_version if self.local_list else 0}

    # -- Firmware management

    def _h_update_firmware(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        self._fw_location = payload["location"]
        try:
            at = self.clock.real(parse_time(payload["retrieveDate"]))
        except ValueError:
            at = now
        self.fw_status = FirmwareStatus.IDLE
        self._timers["fw"] = max(at, now)
        return {}

    def _t_fw(self, _arg: int, now: float) -> None:
        status = self.fw_status
        if status is FirmwareStatus.DOWNLOADING:
            self.fw_status = FirmwareStatus.DOWNLOADED
            self._notify_firmware()
            self._timers["fw"] = self.clock.after(now, 2.0)
        elif status is FirmwareStatus.DOWNLOADED:
            if self.charging:
                self._timers["fw"] = self.clock.after(now, 60.0)  # install when idle
                return
            self.fw_status = FirmwareStatus.INSTALLING
            self._notify_firmware()
            self._timers["fw"] = self.clock.after(now, 5.0)
        elif status is FirmwareStatus.INSTALLING:
            self.firmware = _firmware_version_from(self._fw_location, self.firmware)
            self._request_reboot(now, CloseMode.GRACEFUL)
        elif "://" not in self._fw_location:
            self.fw_status = FirmwareStatus.DOWNLOAD_FAILED
            self._notify_firmware()
            self.fw_status = FirmwareStatus.IDLE
        else:
            self.fw_status = FirmwareStatus.DOWNLOADING
            self._notify_firmware()
            self._timers["fw"] = self.clock.after(now, 10.0)

    def _notify_firmware(self) -> None:
        self._call("FirmwareStatusNotification", {"status": self.fw_status.value})

    def _h_get_diagnostics(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        location = payload["location"]
        self._diag_ok = "://" in location
        stamp = iso(self.clock.sim(now)).replace(":", "").replace("-", "")[:15]
        name = f"diagnostics-{self.identity}-{stamp}.log"[:255]

        def upload(t: float) -> None:
            self.diag_status = DiagnosticsStatus.UPLOADING
            self._notify_diagnostics()
            self._timers["diag"] = self.clock.after(t, 5.0)

        self._after.append(upload)
        return {"fileName": name}

    def _t_diag(self, _arg: int, now: float) -> None:
        self.diag_status = (
            DiagnosticsStatus.UPLOADED if self._diag_ok else DiagnosticsStatus.UPLOAD_FAILED
        )
        self._notify_diagnostics()
        self.diag_status = DiagnosticsStatus.IDLE

    def _notify_diagnostics(self) -> None:
        self._call("DiagnosticsStatusNotification", {"status": self.diag_status.value})

    # -- Security extension (OCPP 1.6 Security Whitepaper, edition 3)

    def _security_event(self, kind: str, now: float, tech_info: str = "") -> None:
        """SecurityEventNotification, queued with guaranteed delivery (SecWP A04.FR.02)."""
        payload: dict[str, Any] = {"type": kind, "timestamp": iso(self.clock.sim(now))}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self._call("SecurityEventNotification", payload, transactional=True)

    def _h_extended_trigger(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        message = payload["requestedMessage"]
        connector_id = payload.get("connectorId")
        if connector_id is not None and not 1 <= connector_id <= self.n:
            return {"status": "Rejected"}  # SecWP §5.5: connectorId > 0
        if message == "SignChargePointCertificate":
            # SecWP A02.FR.02: a new key pair after ExtendedTriggerMessage.conf.
            self._after.append(self._request_certificate)
        elif message == "LogStatusNotification":
            self._after.append(lambda t: self._notify_log())
        elif message == "FirmwareStatusNotification":
            self._after.append(lambda t: self._notify_signed_firmware(triggered=True))
        else:  # BootNotification, Heartbeat, MeterValues, StatusNotification
            return self._h_trigger(payload, now)
        return {"status": "Accepted"}

    def _request_certificate(self, now: float) -> None:
        csr = self.keys.new_csr(common_name=self.identity, organization=self.config.get("CpoName"))

        def answered(result: dict[str, Any] | None, error: CallError | None) -> None:
            if result is None or result.get("status") != "Accepted":
                self.stats.note(self.identity, "SignCertificate was not accepted")

        self._call("SignCertificate", {"csr": csr}, answered)

    def _h_certificate_signed(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        chain = payload["certificateChain"]
        if len(chain) > self.config.get_int("CertificateSignedMaxChainSize"):
            problem: str | None = "certificate chain longer than CertificateSignedMaxChainSize"
        else:
            problem = self.keys.accept(
                chain,
                now=datetime.fromtimestamp(self.clock.sim(now), UTC),
                common_name=self.identity,
                roots=self.certificates.roots(CertificateUse.CENTRAL_SYSTEM_ROOT),
            )
        if problem is not None:
            # SecWP A02.FR.07: discard it and report InvalidChargePointCertificate.
            self.stats.note(self.identity, f"CertificateSigned rejected: {problem}")
            self._after.append(
                lambda t: self._security_event("InvalidChargePointCertificate", t, problem)
            )
            return {"status": "Rejected"}
        return {"status": "Accepted"}

    def _h_install_certificate(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        use = CertificateUse(payload["certificateType"])
        return {"status": self.certificates.install(use, payload["certificate"])}

    def _h_delete_certificate(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        return {"status": self.certificates.delete(payload["certificateHashData"])}

    def _h_installed_certificate_ids(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        return self.certificates.ids(CertificateUse(payload["certificateType"]))

    def _h_get_log(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        # SecWP N01.FR.11: a new request cancels the upload in progress.
        canceled = self._log_request is not None
        self._timers.pop("log", None)
        self._log_request = payload["requestId"]
        self._log_ok = "://" in payload["log"]["remoteLocation"]
        stamp = iso(self.clock.sim(now)).replace(":", "").replace("-", "")[:15]
        name = f"{payload['logType']}-{self.identity}-{stamp}.log"[:255]

        def upload(t: float) -> None:
            self.log_status = LogStatus.UPLOADING  # N01.FR.08
            self._notify_log()
            self._timers["log"] = self.clock.after(t, 5.0)

        self._after.append(upload)
        return {"status": "AcceptedCanceled" if canceled else "Accepted", "filename": name}

    def _t_log(self, _arg: int, now: float) -> None:
        # SecWP N01.FR.09/10: Uploaded, or why not.
        self.log_status = LogStatus.UPLOADED if self._log_ok else LogStatus.UPLOAD_FAILURE
        self._notify_log()
        self.log_status = LogStatus.IDLE
        self._log_request = None

    def _notify_log(self) -> None:
        payload: dict[str, Any] = {"status": self.log_status.value}
        if self._log_request is not None:  # SecWP N01.FR.07/12
            payload["requestId"] = self._log_request
        self._call("LogStatusNotification", payload)

    def _h_signed_update_firmware(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        firmware = payload["firmware"]
        if not is_pem_certificate(firmware["signingCertificate"]):
            # SecWP L01.FR.23/24 and L01.FR.02.
            self._after.append(
                lambda t: self._security_event("InvalidFirmwareSigningCertificate", t)
            )
            return {"status": "InvalidCertificate"}
        # SecWP L01.FR.26: a new request cancels the update in progress.
        canceled = self._sfw_request is not None
        self._sfw_request = payload["requestId"]
        self._sfw = firmware
        self.signed_fw_status = SignedFirmwareStatus.IDLE
        try:
            at = max(now, self.clock.real(parse_time(firmware["retrieveDateTime"])))
        except ValueError:
            at = now
        if at > now:
            # SecWP L01.FR.13.
            self._after.append(
                lambda t: self._set_signed_firmware(SignedFirmwareStatus.DOWNLOAD_SCHEDULED)
            )
        self._timers["sfw"] = at
        return {"status": "AcceptedCanceled" if canceled else "Accepted"}

    def _t_sfw(self, _arg: int, now: float) -> None:
        status = self.signed_fw_status
        step = SignedFirmwareStatus
        if status in (step.IDLE, step.DOWNLOAD_SCHEDULED):
            if "://" not in self._sfw["location"]:
                self._set_signed_firmware(step.DOWNLOAD_FAILED)
                return
            self._set_signed_firmware(step.DOWNLOADING)
            self._timers["sfw"] = self.clock.after(now, 10.0)
        elif status is step.DOWNLOADING:
            self._set_signed_firmware(step.DOWNLOADED)
            self._timers["sfw"] = self.clock.after(now, 1.0)
        elif status is step.DOWNLOADED:
            if not is_base64_signature(self._sfw["signature"]):
                # SecWP L01.FR.03.
                self._set_signed_firmware(step.INVALID_SIGNATURE)
                self._security_event("InvalidFirmwareSignature", now)
                return
            self._set_signed_firmware(step.SIGNATURE_VERIFIED)
            self._timers["sfw"] = self.clock.after(now, 1.0)
        elif status in (step.SIGNATURE_VERIFIED, step.INSTALL_SCHEDULED):
            install_at = now
            if "installDateTime" in self._sfw:
                try:
                    install_at = self.clock.real(parse_time(self._sfw["installDateTime"]))
                except ValueError:
                    install_at = now
            if install_at > now:
                if status is not step.INSTALL_SCHEDULED:
                    self._set_signed_firmware(step.INSTALL_SCHEDULED)  # L01.FR.16
                self._timers["sfw"] = install_at
            elif self.charging:
                self._timers["sfw"] = self.clock.after(now, 60.0)  # L01.FR.06: when idle
            else:
                self._set_signed_firmware(step.INSTALLING)
                self._timers["sfw"] = self.clock.after(now, 5.0)
        elif status is step.INSTALLING:
            # Installed without a reboot: the simulator has no bootloader to restart into.
            self.firmware = _firmware_version_from(self._sfw["location"], self.firmware)
            self._set_signed_firmware(step.INSTALLED)
            self._security_event("FirmwareUpdated", now, self.firmware)

    def _set_signed_firmware(self, status: SignedFirmwareStatus) -> None:
        self.signed_fw_status = status  # SecWP L01.FR.01: every new state is reported
        self._notify_signed_firmware()
        if status in _SIGNED_FIRMWARE_ENDS:
            self._sfw_request = None

    def _notify_signed_firmware(self, *, triggered: bool = False) -> None:
        status = self.signed_fw_status
        if triggered and status is SignedFirmwareStatus.INSTALLED:
            status = SignedFirmwareStatus.IDLE  # SecWP L01.FR.28
        payload: dict[str, Any] = {"status": status.value}
        if self._sfw_request is not None:  # SecWP L01.FR.10/21
            payload["requestId"] = self._sfw_request
        self._call("SignedFirmwareStatusNotification", payload)

    # -- Smart charging

    def _active_transaction(self, connector_id: int) -> int | bool | None:
        if not 1 <= connector_id <= self.n:
            return None
        s = self.connectors[connector_id].session
        if s is None or s.state is not SessionState.CHARGING:
            return None
        return s.transaction_id if s.transaction_id is not None else True

    def _h_set_profile(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        self._advance_all(now)
        status = self.profiles.install(
            connector_id,
            payload["csChargingProfiles"],
            self.clock.sim(now),
            self._active_transaction(connector_id),
        )
        if status is ProfileStatus.ACCEPTED:
            self._after.append(self._limits_changed)
        return {"status": status.value}

    def _h_clear_profile(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        self._advance_all(now)
        removed = self.profiles.clear(
            payload.get("id"),
            payload.get("connectorId"),
            payload.get("chargingProfilePurpose"),
            payload.get("stackLevel"),
        )
        if removed:
            self._after.append(self._limits_changed)
        return {"status": "Accepted" if removed else "Unknown"}

    def _h_composite(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        connector_id = payload["connectorId"]
        if not 0 <= connector_id <= self.n:
            return {"status": "Rejected"}
        unit = RateUnit(payload.get("chargingRateUnit", "W"))
        start = self.clock.sim(now)
        s = self.connectors[connector_id].session if connector_id else None
        running = s is not None and s.state is SessionState.CHARGING
        periods = self.profiles.composite(
            connector_id,
            start,
            payload["duration"],
            unit,
            s.start_sim if s is not None and running else None,
            running,
        )
        stamp = iso(start)
        return {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": stamp,
            "chargingSchedule": {
                "duration": payload["duration"],
                "startSchedule": stamp,
                "chargingRateUnit": unit.value,
                "chargingSchedulePeriod": [
                    {"startPeriod": offset, "limit": limit} for offset, limit in periods
                ],
            },
        }

    def limit_w(self, connector_id: int, now: float) -> float:
        """The power limit in force on a connector now (hardware and profiles)."""
        s = self.connectors[connector_id].session if connector_id else None
        running = s is not None and s.state is SessionState.CHARGING
        limit, _ = self.profiles.limit_w(
            connector_id,
            self.clock.sim(now),
            s.start_sim if s is not None and running else None,
            running,
        )
        return limit

    def _limits_changed(self, now: float) -> None:
        for c in self.connectors[1:]:
            s = c.session
            if s is not None and s.state is SessionState.CHARGING:
                self._update_power(c, s, now)
                self._refresh(c)

    # ------------------------------------------------------------------ sessions

    def _free_for(self, c: Connector, id_tag: str) -> bool:
        cp = self.connectors[0]
        if c.id == 0 or c.fault or cp.fault or not c.operative or not cp.operative:
            return False
        if c.session is not None and c.session.state is not SessionState.REFUSED:
            return False
        return c.reservation is None or c.reservation.id_tag == id_tag

    def _plug_and_start(
        self,
        c: Connector,
        now: float,
        id_tag: str,
        ev: EvSpec,
        authorize: bool,
        dwell: float | None,
        unplug_after: float,
        *,
        remote: bool,
        profile: dict[str, Any] | None = None,
    ) -> None:
        c.plugged = True
        s = Session(c.id, id_tag, ev, unplug_after, remote)
        s.pending_profile = profile
        c.session = s
        if dwell is not None:
            self._timers[f"depart:{c.id}"] = self.clock.after(now, dwell)
        self._refresh(c)
        if authorize:
            self._authorize(c, s, now)
        else:
            self._start_tx(c, s, now)

    def _local_auth(self, id_tag: str, now: float) -> str | None:
        info = None
        if self.config.get_bool("LocalAuthListEnabled"):
            info = self.local_list.get(id_tag)
        if info is None and self.config.get_bool("AuthorizationCacheEnabled"):
            info = self.auth_cache.get(id_tag)
        if info is None:
            return None
        status = str(info.get("status", "Invalid"))
        expiry = info.get("expiryDate")
        if status == "Accepted" and expiry:
            try:
                if parse_time(expiry) < self.clock.sim(now):
                    return "Expired"
            except ValueError:
                return "Invalid"
        return status

    def _authorize(self, c: Connector, s: Session, now: float) -> None:
        local = self._local_auth(s.id_tag, now)
        # Still booting counts as online: the Authorize waits behind the BootNotification.
        online = self.connected and self.close_request is None
        if online:
            if local == "Accepted" and self.config.get_bool("LocalPreAuthorize"):
                self._start_tx(c, s, now)
                return
            self._call(
                "Authorize",
                {"idTag": s.id_tag},
                lambda result, error: self._on_authorized(c, s, result, error),
            )
            return
        self._offline_decision(c, s, local, now)

    def _offline_decision(self, c: Connector, s: Session, local: str | None, now: float) -> None:
        if local == "Accepted" and self.config.get_bool("LocalAuthorizeOffline"):
            self._start_tx(c, s, now)
        elif local is None and self.config.get_bool("AllowOfflineTxForUnknownId"):
            self._start_tx(c, s, now)
        else:
            self._refuse(c, s, now)

    def _on_authorized(
        self, c: Connector, s: Session, result: dict[str, Any] | None, error: CallError | None
    ) -> None:
        now = self._now
        if c.session is not s or s.state is not SessionState.AUTHORIZING:
            return
        if error is not None or result is None:
            if isinstance(error, ConnectionLost | CallTimeout):
                self._offline_decision(c, s, self._local_auth(s.id_tag, now), now)
            else:
                self._refuse(c, s, now)
            return
        info = result.get("idTagInfo") or {}
        self._cache(s.id_tag, info)
        if info.get("status") == "Accepted":
            self._start_tx(c, s, now)
        else:
            self._refuse(c, s, now)

    def _cache(self, id_tag: str, info: dict[str, Any]) -> None:
        if info and self.config.get_bool("AuthorizationCacheEnabled"):
            self.auth_cache[id_tag] = info

    def _refuse(self, c: Connector, s: Session, now: float) -> None:
        self.stats.auth_rejected += 1
        s.state = SessionState.REFUSED
        if f"depart:{c.id}" not in self._timers:
            self._timers[f"unplug:{c.id}"] = self.clock.after(now, s.unplug_after)
        self._refresh(c)

    def _start_tx(self, c: Connector, s: Session, now: float) -> None:
        s.state = SessionState.CHARGING
        s.meter_start = _wh(c.register_wh)
        s.start_sim = self.clock.sim(now)
        s.last_real = now
        s.last_sample_wh = c.register_wh
        payload: dict[str, Any] = {
            "connectorId": c.id,
            "idTag": s.id_tag,
            "meterStart": s.meter_start,
            "timestamp": iso(s.start_sim),
        }
        reservation = c.reservation
        if reservation is not None and reservation.id_tag == s.id_tag:
            payload["reservationId"] = reservation.reservation_id
            c.reservation = None
            self._timers.pop(f"reserve:{c.id}", None)
        self._call(
            "StartTransaction",
            payload,
            lambda result, error: self._on_started(c, s, result, error),
            transactional=True,
            session=s,
        )
        if s.pending_profile is not None:
            self.profiles.install(c.id, s.pending_profile, s.start_sim, True)
            s.pending_profile = None
        self._update_power(c, s, now)
        self._refresh(c)
        self._schedule_meter(c, now)

    def _on_started(
        self, c: Connector, s: Session, result: dict[str, Any] | None, error: CallError | None
    ) -> None:
        if result is None:
            return  # noted by the queue; the session goes on locally
        self.stats.transactions_started += 1
        transaction_id = result.get("transactionId")
        if isinstance(transaction_id, int):
            s.transaction_id = transaction_id
        info = result.get("idTagInfo") or {}
        self._cache(s.id_tag, info)
        if (
            info.get("status") != "Accepted"
            and self.config.get_bool("StopTransactionOnInvalidId")
            and c.session is s
            and s.state is SessionState.CHARGING
        ):
            self._stop(c, self._now, StopReason.DE_AUTHORIZED)

    def _update_power(self, c: Connector, s: Session, now: float) -> None:
        limit, _ = self.profiles.limit_w(c.id, self.clock.sim(now), s.start_sim, True)
        s.limit_w = limit
        s.power_w = s.curve.power_w(s.soc, limit, s.target)

    def _advance(self, c: Connector, now: float) -> None:
        """Integrate the energy delivered since the session was last brought up to date."""
        s = c.session
        if s is None or s.state is not SessionState.CHARGING or now <= s.last_real:
            return
        clock = self.clock
        t = clock.sim(s.last_real)
        end = clock.sim(now)
        profiles = self.profiles
        while t < end:
            limit, change = profiles.limit_w(c.id, t, s.start_sim, True)
            upto = min(end, change) if change > t else end
            step = s.curve.charge(s.soc, upto - t, limit, s.target)
            s.soc = step.soc
            s.energy_wh += step.energy_wh
            c.register_wh += step.energy_wh
            s.power_w = step.power_w
            s.limit_w = limit
            t = upto
        s.last_real = now

    def _advance_all(self, now: float) -> None:
        for c in self.connectors[1:]:
            self._advance(c, now)

    def _schedule_meter(self, c: Connector, now: float) -> None:
        interval = self.config.get_int("MeterValueSampleInterval")
        s = c.session
        if interval > 0 and s is not None and s.state is SessionState.CHARGING:
            self._timers[f"meter:{c.id}"] = now + max(interval / self.clock.speed, MIN_PERIOD)
        else:
            self._timers.pop(f"meter:{c.id}", None)

    def _t_meter(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        s = c.session
        if s is None or s.state is not SessionState.CHARGING:
            return
        self._advance(c, now)
        self._update_power(c, s, now)
        self._refresh(c)
        measurands = self.config.get_list("MeterValuesSampledData")
        self._send_meter(c, now, "Sample.Periodic", measurands, transactional=True)
        self._schedule_meter(c, now)

    def _sampled_values(
        self, c: Connector, measurands: Iterable[str], context: str
    ) -> list[dict[str, Any]]:
        s = c.session if c.id else None
        charging = s is not None and s.state is SessionState.CHARGING
        power = s.power_w if s is not None and charging else 0.0
        limit = self.limit_w(c.id, self._now) if c.id else 0.0
        electrical = self.electrical
        per_amp = electrical.voltage * electrical.phases
        register = c.register_wh if c.id else sum(x.register_wh for x in self.connectors[1:])
        values: list[dict[str, Any]] = []
        for m in measurands:
            unit: str | None
            location: str | None = None
            if m == "Energy.Active.Import.Register":
                value, unit = str(_wh(register)), "Wh"
            elif m == "Energy.Active.Import.Interval":
                since = s.last_sample_wh if s is not None else register
                value, unit = f"{max(0.0, register - since):.1f}", "Wh"
            elif m == "Power.Active.Import":
                value, unit = f"{power:.1f}", "W"
            elif m == "Power.Offered":
                value, unit = f"{limit:.1f}", "W"
            elif m == "Current.Import":
                value, unit = f"{power / per_amp:.2f}", "A"
            elif m == "Current.Offered":
                value, unit = f"{limit / per_amp:.2f}", "A"
            elif m == "Voltage":
                value, unit = f"{electrical.voltage:.1f}", "V"
            elif m == "Frequency":
                value, unit = "50.0", None
            elif m == "Temperature":
                value, unit, location = "25.0", "Celsius", "Body"
            elif m == "SoC":
                if s is None or not charging:
                    continue
                value, unit, location = f"{s.soc * 100.0:.0f}", "Percent", "EV"
            else:
                continue
            sampled: dict[str, Any] = {"value": value, "context": context, "measurand": m}
            if unit is not None:
                sampled["unit"] = unit
            if location is not None:
                sampled["location"] = location
            values.append(sampled)
        if s is not None:
            s.last_sample_wh = register
        return values

    def _send_meter(
        self, c: Connector, now: float, context: str, measurands: list[str], *, transactional: bool
    ) -> None:
        values = self._sampled_values(c, measurands, context)
        if not values:
            return
        payload: dict[str, Any] = {
            "connectorId": c.id,
            "meterValue": [{"timestamp": self.clock.stamp(now), "sampledValue": values}],
        }
        s = c.session if c.id else None
        in_tx = s is not None and s.state is SessionState.CHARGING
        if in_tx and not transactional and s is not None and s.transaction_id is not None:
            payload["transactionId"] = s.transaction_id
        self._call(
            "MeterValues",
            payload,
            transactional=transactional and in_tx,
            session=s if transactional and in_tx else None,
        )

    def _stop_txn_data(self, c: Connector, s: Session, now: float) -> list[dict[str, Any]]:
        measurands = self.config.get_list("StopTxnSampledData")
        if not measurands:
            return []
        begin = [
            {
                "value": str(s.meter_start),
                "context": "Transaction.Begin",
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
        ]
        end = self._sampled_values(c, measurands, "Transaction.End")
        data = [{"timestamp": iso(s.start_sim), "sampledValue": begin}]
        if end:
            data.append({"timestamp": self.clock.stamp(now), "sampledValue": end})
        return data

    def _stop(self, c: Connector, now: float, reason: StopReason, *, quiet: bool = False) -> bool:
        """End the running transaction on ``c``; False if there is none."""
        s = c.session
        if s is None:
            return False
        if s.state is SessionState.AUTHORIZING:
            s.state = SessionState.REFUSED
            return False
        if s.state is not SessionState.CHARGING:
            return False
        self._advance(c, now)
        s.power_w = 0.0
        s.meter_stop = _wh(c.register_wh)
        s.stop_sim = self.clock.sim(now)
        s.reason = reason.value
        payload: dict[str, Any] = {
            "idTag": s.id_tag,
            "meterStop": s.meter_stop,
            "timestamp": iso(s.stop_sim),
            "reason": reason.value,
        }
        data = self._stop_txn_data(c, s, now)
        if data:
            payload["transactionData"] = data
        s.state = SessionState.STOPPED
        self._timers.pop(f"meter:{c.id}", None)
        self._call(
            "StopTransaction",
            payload,
            lambda result, error: self._on_stopped(s, result, error),
            transactional=True,
            session=s,
        )
        self.stats.energy_wh += s.energy_wh
        self.profiles.end_transaction(c.id)
        if c.pending_inoperative:
            c.operative = False
            c.pending_inoperative = False
        if not quiet:
            self._refresh(c)
        return True

    def _on_stopped(
        self, s: Session, result: dict[str, Any] | None, error: CallError | None
    ) -> None:
        if result is not None:
            self.stats.transactions_stopped += 1
            self._cache(s.id_tag, result.get("idTagInfo") or {})
        self.completed.append(
            SessionRecord(
                connector_id=s.connector_id,
                id_tag=s.id_tag,
                transaction_id=s.transaction_id,
                meter_start=s.meter_start,
                meter_stop=s.meter_stop,
                energy_wh=s.energy_wh,
                started_at=s.start_sim,
                stopped_at=s.stop_sim,
                reason=s.reason,
                soc_start=s.ev.soc_start,
                soc_end=s.soc,
                ev=s.ev,
                remote=s.remote,
            )
        )

    def _t_depart(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        s = c.session
        if s is None:
            self._unplug(c, now)
            return
        if s.state is SessionState.AUTHORIZING:
            self.stats.sessions_abandoned += 1  # the driver left before authorization came back
        if s.state is SessionState.CHARGING:
            self._stop(c, now, StopReason.LOCAL)
        if s.state is SessionState.STOPPED:
            self._timers[f"unplug:{c.id}"] = self.clock.after(now, s.unplug_after)
        else:
            self._unplug(c, now)

    def _t_unplug(self, connector_id: int, now: float) -> None:
        self._unplug(self.connectors[connector_id], now)

    def _unplug(self, c: Connector, now: float) -> None:
        s = c.session
        if s is not None and s.state is SessionState.CHARGING:
            self._stop(c, now, StopReason.EV_DISCONNECTED, quiet=True)
        for name in (f"depart:{c.id}", f"unplug:{c.id}", f"meter:{c.id}"):
            self._timers.pop(name, None)
        was_plugged = c.plugged or s is not None
        c.session = None
        c.plugged = False
        self._refresh(c)
        if was_plugged:
            self._next_visit(c, now)

    def _next_visit(self, c: Connector, now: float) -> None:
        c.next_visit = None
        if self._stopping or not c.visits:
            return
        visit = c.visits.popleft()
        c.next_visit = visit
        self._timers[f"arrive:{c.id}"] = self.clock.after(now, visit.arrival)

    def _t_arrive(self, connector_id: int, now: float) -> None:
        c = self.connectors[connector_id]
        if c.next_visit is not None:
            self._arrive(c.next_visit, now)

    def _arrive(self, visit: PlannedSession, now: float) -> None:
        c = self.connectors[visit.connector_id]
        if c.next_visit is visit:
            c.next_visit = None
        if self._stopping:
            return
        if not self._powered or c.plugged or not self._free_for(c, visit.id_tag):
            self.stats.sessions_missed += 1
            self._next_visit(c, now)
            return
        ev = EvSpec(visit.battery_wh, visit.ev_max_power_w, visit.soc_start, visit.soc_target)
        self._plug_and_start(
            c, now, visit.id_tag, ev, visit.authorize, visit.dwell, visit.unplug_after, remote=False
        )

    # ------------------------------------------------------------------ status

    def _derive(self, c: Connector) -> tuple[ConnectorStatus, FaultInfo | None]:
        cp = self.connectors[0]
        if c.id == 0:
            if cp.fault:
                return ConnectorStatus.FAULTED, cp.fault
            if not cp.operative:
                return ConnectorStatus.UNAVAILABLE, None
            return ConnectorStatus.AVAILABLE, None
        fault = c.fault or cp.fault
        if fault:
            return ConnectorStatus.FAULTED, fault
        s = c.session
        if s is not None and s.state is SessionState.CHARGING:
            if s.power_w > 0.0:
                return ConnectorStatus.CHARGING, None
            if s.limit_w <= 0.0:
                return ConnectorStatus.SUSPENDED_EVSE, None
            return ConnectorStatus.SUSPENDED_EV, None
        if not c.operative or not cp.operative:
            return ConnectorStatus.UNAVAILABLE, None
        if c.plugged:
            if s is not None and s.state is SessionState.STOPPED:
                return ConnectorStatus.FINISHING, None
            return ConnectorStatus.PREPARING, None
        if c.reservation is not None:
            return ConnectorStatus.RESERVED, None
        return ConnectorStatus.AVAILABLE, None

    def _refresh(self, c: Connector) -> None:
        status, fault = self._derive(c)
        if status is c.status and fault == c.status_fault:
            return
        c.status = status
        c.status_fault = fault
        self._notify_status(c)

    def _refresh_later(self, c: Connector, _now: float) -> None:
        self._refresh(c)

    def _refresh_all(self) -> None:
        for c in self.connectors:
            self._refresh(c)

    def _notify_status(self, c: Connector, *, force: bool = False) -> None:
        if not self.connected or (self.boot_required and not force):
            return
        fault = c.status_fault
        payload: dict[str, Any] = {
            "connectorId": c.id,
            "status": c.status.value,
            "errorCode": fault.error_code if fault else "NoError",
            "timestamp": self.clock.stamp(self._now),
        }
        if fault is not None:
            if fault.vendor_error_code:
                payload["vendorErrorCode"] = fault.vendor_error_code
            if fault.info:
                payload["info"] = fault.info
            payload["vendorId"] = self.info.vendor
        key = (c.status, fault)

        def reported(result: dict[str, Any] | None, error: CallError | None) -> None:
            if result is not None:
                c.reported = key

        self._call("StatusNotification", payload, reported)

    def _report_changes(self) -> None:
        for c in self.connectors:
            if (c.status, c.status_fault) != c.reported:
                self._notify_status(c)

    # ------------------------------------------------------------------ boot, heartbeat

    def _on_boot(self, result: dict[str, Any] | None, error: CallError | None) -> None:
        now = self._now
        if result is None:
            if self.boot_required and self.connected:
                self._timers["boot"] = now + max(self.reconnect_base, 1.0)
            return
        status = result.get("status")
        interval = result.get("interval")
        interval = interval if isinstance(interval, int) and interval >= 0 else 0
        if status == "Accepted":
            self.registration = Registration.ACCEPTED
            self.stats.boots_accepted += 1
            was_required = self.boot_required
            self.boot_required = False
            if interval > 0:
                self.config.set("HeartbeatInterval", interval)
            self._schedule_heartbeat(now)
            self._schedule_aligned(now)
            if was_required:
                self._report_changes()
                if self.config.get_bool("SimSecurityEventOnBoot"):
                    # SecWP §8: StartupOfTheDevice is critical, pushed at once (A04.FR.01).
                    self._security_event("StartupOfTheDevice", now)
                if self.fw_status is FirmwareStatus.INSTALLING:
                    self.fw_status = FirmwareStatus.INSTALLED
                    self._notify_firmware()
                    self.fw_status = FirmwareStatus.IDLE
        else:
            self.registration = (
                Registration.PENDING if status == "Pending" else Registration.REJECTED
            )
            if self.boot_required:
                self._timers["boot"] = self.clock.after(now, interval or 60)

    def _t_boot(self, _arg: int, now: float) -> None:
        if self.connected and self.boot_required:
            self._enqueue_boot()

    def _schedule_heartbeat(self, now: float) -> None:
        interval = self.config.get_int("HeartbeatInterval")
        if interval > 0 and self.registration is Registration.ACCEPTED and self.connected:
            self._timers["hb"] = now + max(interval / self.clock.speed, MIN_PERIOD)
        else:
            self._timers.pop("hb", None)

    def _t_heartbeat(self, _arg: int, now: float) -> None:
        if self.connected and not self.boot_required:
            self._call("Heartbeat", {})
        self._schedule_heartbeat(now)

    def _schedule_aligned(self, now: float) -> None:
        interval = self.config.get_int("ClockAlignedDataInterval")
        if interval > 0 and self.registration is Registration.ACCEPTED and self.connected:
            sim = self.clock.sim(now)
            upcoming = (math.floor(sim / interval) + 1) * interval
            self._timers["aligned"] = max(self.clock.real(upcoming), now + MIN_PERIOD)
        else:
            self._timers.pop("aligned", None)

    def _t_aligned(self, _arg: int, now: float) -> None:
        measurands = self.config.get_list("MeterValuesAlignedData")
        for c in self.connectors[1:]:
            self._advance(c, now)
            self._send_meter(c, now, "Sample.Clock", measurands, transactional=True)
        self._schedule_aligned(now)

    # ------------------------------------------------------------------ faults, resets

    def _t_script(self, _arg: int, now: float) -> None:
        script = self._script
        while self._script_pos < len(script) and script[self._script_pos][0] <= now:
            _, event = script[self._script_pos]
            self._script_pos += 1
            if isinstance(event, PlannedSession):
                self._arrive(event, now)
            else:
                self._fault(event, now)
        if self._script_pos < len(script):
            self._timers["script"] = script[self._script_pos][0]

    def _fault(self, fault: PlannedFault, now: float) -> None:
        if self._stopping:
            return
        if fault.kind is FaultKind.FAULTED:
            c = self.connectors[fault.connector_id]
            c.fault = FaultInfo(fault.error_code, fault.vendor_error_code, fault.info)
            affected = self.connectors[1:] if c.id == 0 else [c]
            for x in affected:
                self._stop(x, now, StopReason.OTHER, quiet=True)
            self._timers[f"clear:{c.id}"] = self.clock.after(now, fault.duration)
            self._refresh_all()
        elif fault.kind is FaultKind.DISCONNECT:
            if self.connected:
                self.close_request = CloseMode.ABRUPT
        elif fault.kind is FaultKind.OFFLINE:
            self._offline_until = self.clock.after(now, fault.duration)
            if self.connected:
                self.close_request = CloseMode.ABRUPT
        elif fault.kind is FaultKind.POWER_CUT:
            self._power_cut(now, fault.duration)

    def _t_clear(self, connector_id: int, now: float) -> None:
        self.connectors[connector_id].fault = None
        self._refresh_all()

    def _power_cut(self, now: float, duration: float) -> None:
        for c in self.connectors[1:]:
            self._stop(c, now, StopReason.POWER_LOSS, quiet=True)
        self._powered = False
        for name in [n for n in self._timers if n.split(":")[0] in ("hb", "boot", "aligned", "fw")]:
            del self._timers[name]
        self._timers["power"] = self.clock.after(now, duration)
        if self.connected:
            self.close_request = CloseMode.ABRUPT

    def _t_power(self, _arg: int, now: float) -> None:
        self._powered = True
        self._reboot(now)

    def _begin_reset(self, hard: bool, now: float) -> None:
        if hard:
            for c in self.connectors[1:]:
                self._stop(c, now, StopReason.HARD_RESET, quiet=True)
            self._request_reboot(now, CloseMode.ABRUPT)
            return
        for c in self.connectors[1:]:
            self._stop(c, now, StopReason.SOFT_RESET)
        self._soft_reset_deadline = now + self.drain_timeout
        self._timers["reset"] = self._soft_reset_deadline

    def _check_soft_reset(self, now: float) -> None:
        assert self._soft_reset_deadline is not None
        drained = not self._queue and self._inflight is None
        if drained or now >= self._soft_reset_deadline or not self.connected:
            self._soft_reset_deadline = None
            self._timers.pop("reset", None)
            self._request_reboot(now, CloseMode.GRACEFUL)

    def _request_reboot(self, now: float, mode: CloseMode) -> None:
        if self.connected:
            self._rebooting = True
            self.close_request = mode
        else:
            self._reboot(now)

    def _reboot(self, now: float) -> None:
        """Come back up: Boot again, report every status, keep queued transaction messages."""
        self._rebooting = False
        self.registration = Registration.NONE
        self.boot_required = True
        for name in [n for n in self._timers if n.split(":")[0] in ("hb", "boot", "aligned")]:
            del self._timers[name]
        for c in self.connectors:
            c.reported = None
            self.profiles.end_transaction(c.id)
        self._refresh_all()
        self._attempt = 0
        self.connect_at = now
        if not self._stopping:
            self.want_connected = True

    def _t_noop(self, _arg: int, now: float) -> None:
        """Wake-up only: the end of the step checks what is due."""

    def _check_shutdown(self, now: float) -> None:
        drained = not self._queue and self._inflight is None
        if drained or now >= self._stop_deadline:
            if self.connected:
                if self.close_request is None:
                    self.close_request = CloseMode.GRACEFUL
            elif drained or now >= self._stop_deadline or not self._powered:
                self.done = True
        if self.done and self._queue:
            unsent = sum(1 for ob in self._queue if ob.transactional)
            if unsent:
                self.stats.dropped_messages += unsent
                self.stats.note(self.identity, f"{unsent} transaction message(s) never sent")
            self._queue.clear()


_CALL_HANDLERS: Final[dict[str, Callable[[Station, dict[str, Any], float], dict[str, Any]]]] = {
    "CancelReservation": Station._h_cancel_reservation,
    "ChangeAvailability": Station._h_change_availability,
    "ChangeConfiguration": Station._h_change_configuration,
    "ClearCache": Station._h_clear_cache,
    "ClearChargingProfile": Station._h_clear_profile,
    "DataTransfer": Station._h_data_transfer,
    "GetCompositeSchedule": Station._h_composite,
    "GetConfiguration": Station._h_get_configuration,
    "GetDiagnostics": Station._h_get_diagnostics,
    "GetLocalListVersion": Station._h_get_local_list_version,
    "RemoteStartTransaction": Station._h_remote_start,
    "RemoteStopTransaction": Station._h_remote_stop,
    "ReserveNow": Station._h_reserve_now,
    "Reset": Station._h_reset,
    "SendLocalList": Station._h_send_local_list,
    "SetChargingProfile": Station._h_set_profile,
    "TriggerMessage": Station._h_trigger,
    "UnlockConnector": Station._h_unlock,
    "UpdateFirmware": Station._h_update_firmware,
    # Security Whitepaper (edition 3)
    "CertificateSigned": Station._h_certificate_signed,
    "DeleteCertificate": Station._h_delete_certificate,
    "ExtendedTriggerMessage": Station._h_extended_trigger,
    "GetInstalledCertificateIds": Station._h_installed_certificate_ids,
    "GetLog": Station._h_get_log,
    "InstallCertificate": Station._h_install_certificate,
    "SignedUpdateFirmware": Station._h_signed_update_firmware,
}

_TIMER_HANDLERS: Final[dict[str, Callable[[Station, int, float], None]]] = {
    "aligned": Station._t_aligned,
    "arrive": Station._t_arrive,
    "boot": Station._t_boot,
    "clear": Station._t_clear,
    "depart": Station._t_depart,
    "diag": Station._t_diag,
    "fw": Station._t_fw,
    "hb": Station._t_heartbeat,
    "log": Station._t_log,
    "meter": Station._t_meter,
    "ping": Station._t_ping,
    "power": Station._t_power,
    "reserve": Station._t_reserve,
    "reset": Station._t_noop,
    "retry": Station._t_noop,
    "script": Station._t_script,
    "sfw": Station._t_sfw,
    "shutdown": Station._t_noop,
    "timeout": Station._t_timeout,
    "unplug": Station._t_unplug,
}
