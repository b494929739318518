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

The station is the composition root of one charger. Each part lives in its own module
and sees the rest only through :class:`~simulators.services.Services` and the narrow
extras its module declares:

- :mod:`~simulators.outbound`: our CALLs, one in flight, timeouts and retries;
- :mod:`~simulators.inbound`: the central system's CALLs, validated and dispatched;
- :mod:`~simulators.connection`: connected or not, backoff, outages, power;
- :mod:`~simulators.boot`: BootNotification, Heartbeat, websocket ping;
- :mod:`~simulators.status`: connector statuses and ChangeAvailability;
- :mod:`~simulators.sessions`, :mod:`~simulators.authorization`,
  :mod:`~simulators.reservations`, :mod:`~simulators.metering`: EV sessions;
- :mod:`~simulators.smart`: charging profiles;
- :mod:`~simulators.firmware`: firmware updates, diagnostics and logs;
- :mod:`~simulators.security`: certificates and security events;
- :mod:`~simulators.triggers`: (Extended)TriggerMessage;
- :mod:`~simulators.faults`: faults, power cuts, resets and reboots;
- :mod:`~simulators.script`: a scenario's arrivals and faults.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .authorization import LocalAuthorization
from .boot import Boot
from .clock import Clock
from .config import ConfigStore, ConfigurationCommands
from .connection import Connection
from .faults import FaultsAndResets
from .firmware import (
    Diagnostics,
    DiagnosticsStatus,
    FirmwareStatus,
    FirmwareUpdates,
    LogStatus,
    SignedFirmwareStatus,
)
from .inbound import InboundCalls
from .metering import Metering
from .model import (
    ChargerInfo,
    CloseMode,
    Connector,
    ConnectorStatus,
    EvSpec,
    IncomingCall,
    Registration,
    Session,
    SessionRecord,
    SessionState,
    StopReason,
)
from .ocppj import Call, CallErrorFrame, CallResult, ConnectionLost, parse_frame
from .outbound import CallQueue
from .reservations import Reservations
from .scenario import ChargerPlan, PlannedFault
from .script import ScenarioScript
from .security import CertificateStore, ChargerKeys, SecurityActions
from .services import AfterReply, Callback, Handler
from .sessions import Sessions
from .smart import Electrical, ProfileStore, Quirk, SmartCharging
from .stats import Stats
from .status import StatusReporter
from .timers import Timer, Timers
from .triggers import Triggers

__all__ = [
    "ChargerInfo",
    "CloseMode",
    "Connector",
    "ConnectorStatus",
    "DiagnosticsStatus",
    "EvSpec",
    "FirmwareStatus",
    "IncomingCall",
    "LogStatus",
    "Registration",
    "Session",
    "SessionRecord",
    "SessionState",
    "SignedFirmwareStatus",
    "Station",
    "StopReason",
]

# Timers that outlive the end of a run: the queue must still drain.
_SHUTDOWN_KEEPS = (Timer.CALL_TIMEOUT, Timer.CALL_RETRY, Timer.BOOT_RETRY)
# Timers that only make sense on an open connection.
_CONNECTION_TIMERS = (
    Timer.CALL_TIMEOUT,
    Timer.HEARTBEAT,
    Timer.CALL_RETRY,
    Timer.BOOT_RETRY,
    Timer.CLOCK_ALIGNED_METER,
    Timer.WEBSOCKET_PING,
)


T = TypeVar("T")


class _Forwarded(Generic[T]):
    """An attribute of the station that one of its parts keeps: ``part.name``."""

    __slots__ = ("_name", "_part")

    def __init__(self, part: str, name: str) -> None:
        self._part = part
        self._name = name

    def __get__(self, station: Station | None, owner: type[Station] | None = None) -> T:
        if station is None:
            raise AttributeError(f"{self._part}.{self._name} lives on a station")
        value: T = getattr(getattr(station, self._part), self._name)
        return value

    def __set__(self, station: Station, value: T) -> None:
        setattr(getattr(station, self._part), self._name, value)


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
        quirks: Iterable[str] = (),
    ) -> None:
        if connectors < 1:
            raise ValueError("a charger has at least one connector")
        self.info = info
        self.connector_count = connectors
        self.clock = clock
        self.stats = stats if stats is not None else Stats()
        initial: dict[str, str | int | bool | float] = {"NumberOfConnectors": connectors}
        flags = frozenset(Quirk(q) for q in quirks)
        # What a quirky charger reports about itself (OCPP 1.6 §9.4).
        if Quirk.AMPS_ONLY in flags:
            initial["ChargingScheduleAllowedChargingRateUnit"] = "Current"
        if Quirk.ONE_PERIOD in flags:
            initial["ChargingScheduleMaxPeriods"] = 1
        initial.update(config or {})
        self.config = ConfigStore(initial)
        self.electrical = electrical or Electrical()
        self.profiles = ProfileStore(
            connectors,
            self.electrical,
            max_stack=self.config.get_int("ChargeProfileMaxStackLevel"),
            max_periods=self.config.get_int("ChargingScheduleMaxPeriods"),
            max_profiles=self.config.get_int("MaxChargingProfilesInstalled"),
            quirks=flags,
        )
        self.connectors = [Connector(i) for i in range(connectors + 1)]
        self.plan = plan
        if plan is not None:
            for connector, start in zip(self.connectors[1:], plan.meter_start_wh, strict=False):
                connector.register_wh = start
        self.auto_boot = auto_boot
        self.auto_reconnect = auto_reconnect
        self.drain_timeout = drain_timeout
        self.rng = random.Random(seed if seed is not None else info.identity)

        self.outbox: deque[bytes] = deque()  # what the shell sends next
        self.done = False
        self.timers = Timers()
        self._now = 0.0
        self._after_reply: list[AfterReply] = []
        self._stopping = False
        self._stop_deadline = math.inf

        self.connection = Connection(
            rng=self.rng, reconnect_base=reconnect_base, reconnect_cap=reconnect_cap
        )
        self.calls = CallQueue(
            self, call_timeout=call_timeout, validate_outbound=validate_outbound, keep_raw=keep_raw
        )
        self.status_reporter = StatusReporter(self, self.connectors, vendor=info.vendor)
        self.authorization = LocalAuthorization(self.config)
        self.reservations = Reservations(self, self.connectors, self.status_reporter)
        self.metering = Metering(
            self,
            self.connectors,
            profiles=self.profiles,
            electrical=self.electrical,
            status=self.status_reporter,
        )
        self.sessions = Sessions(
            self,
            self.connectors,
            status=self.status_reporter,
            metering=self.metering,
            authorization=self.authorization,
            reservations=self.reservations,
            profiles=self.profiles,
            default_ev=default_ev or EvSpec(),
            remote_dwell=remote_dwell,
            remote_unplug_after=remote_unplug_after,
        )
        self.smart_charging = SmartCharging(
            self,
            self.connectors,
            self.profiles,
            transaction_on=self.sessions.transaction_on,
            settle_energy=self.metering.advance_all,
            apply_limits=self.metering.apply_limits,
        )
        self.security = SecurityActions(
            self,
            keys=ChargerKeys(),
            certificates=CertificateStore(self.config.get_int("CertificateStoreMaxLength")),
        )
        self.firmware_updates = FirmwareUpdates(self, version=info.firmware)
        self.diagnostics = Diagnostics(self)
        self.boot = Boot(
            self,
            info=info,
            required=auto_boot,
            retry_after_error=max(reconnect_base, 1.0),
            accepted=self._registered,
        )
        self.faults = FaultsAndResets(
            self,
            self.connectors,
            connection=self.connection,
            sessions=self.sessions,
            status=self.status_reporter,
            boot=self.boot,
            profiles=self.profiles,
            drain_timeout=drain_timeout,
        )
        self.triggers = Triggers(
            self,
            self.connectors,
            boot=self.boot,
            status=self.status_reporter,
            metering=self.metering,
            firmware=self.firmware_updates,
            diagnostics=self.diagnostics,
            security=self.security,
        )
        self.configuration = ConfigurationCommands(self.config, after_reply=self.after_reply)
        self.configuration.watch("HeartbeatInterval", self.boot.schedule_heartbeat)
        self.configuration.watch("MeterValueSampleInterval", self.metering.reschedule_samples)
        self.configuration.watch("ClockAlignedDataInterval", self.metering.schedule_aligned)
        self.configuration.watch("WebSocketPingInterval", self.boot.schedule_ping)
        self.inbound = InboundCalls(
            self,
            self._handlers(),
            security_extension=security_extension,
            validate_outbound=validate_outbound,
        )
        self.script = ScenarioScript(
            self.timers, arrive=self.sessions.arrive, inject=self.faults.inject
        )
        if not auto_boot:
            # scripted use: nothing to report until the script says so
            for connector in self.connectors:
                connector.reported = (connector.status, connector.status_fault)

    def _handlers(self) -> dict[str, Handler]:
        """The central system's actions and the parts that handle them."""
        return {
            "CancelReservation": self.reservations.cancel_reservation,
            "ChangeAvailability": self.status_reporter.change_availability,
            "ChangeConfiguration": self.configuration.change_configuration,
            "ClearCache": self.authorization.clear_cache,
            "ClearChargingProfile": self.smart_charging.clear_charging_profile,
            "DataTransfer": self._data_transfer,
            "GetCompositeSchedule": self.smart_charging.get_composite_schedule,
            "GetConfiguration": self.configuration.get_configuration,
            "GetDiagnostics": self.diagnostics.get_diagnostics,
            "GetLocalListVersion": self.authorization.get_local_list_version,
            "RemoteStartTransaction": self.sessions.remote_start,
            "RemoteStopTransaction": self.sessions.remote_stop,
            "ReserveNow": self.reservations.reserve_now,
            "Reset": self.faults.reset,
            "SendLocalList": self.authorization.send_local_list,
            "SetChargingProfile": self.smart_charging.set_charging_profile,
            "TriggerMessage": self.triggers.trigger_message,
            "UnlockConnector": self.sessions.unlock_connector,
            "UpdateFirmware": self.firmware_updates.update_firmware,
            # Security Whitepaper (edition 3)
            "CertificateSigned": self.security.certificate_signed,
            "DeleteCertificate": self.security.delete_certificate,
            "ExtendedTriggerMessage": self.triggers.extended_trigger_message,
            "GetInstalledCertificateIds": self.security.get_installed_certificate_ids,
            "GetLog": self.diagnostics.get_log,
            "InstallCertificate": self.security.install_certificate,
            "SignedUpdateFirmware": self.firmware_updates.signed_update_firmware,
        }

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
        return self.sessions.charging

    @property
    def queued(self) -> int:
        """CALLs waiting to be sent (the one in flight not included)."""
        return len(self.calls.waiting)

    @property
    def queued_transactional(self) -> int:
        """Transaction messages waiting, including one in flight."""
        return self.calls.transactional_count

    @property
    def finished_script(self) -> bool:
        """Whether every scripted event has happened and every EV has left."""
        if not self.script.finished:
            return False
        for connector in self.connectors[1:]:
            if (
                connector.session is not None
                or connector.plugged
                or connector.next_visit
                or connector.visits
                or connector.fault
            ):
                return False
        return self.calls.drained and self.connected

    def wants_connection(self, now: float) -> bool:
        """Whether the shell should open the connection now."""
        return self.connection.should_open(now, done=self.done)

    def next_deadline(self) -> float | None:
        """Loop time of the next timer (or connection attempt), None if nothing is due."""
        deadline = self.timers.next_deadline()
        attempt = self.connection.next_attempt_at(done=self.done)
        if attempt is not None:
            deadline = attempt if deadline is None else min(deadline, attempt)
        return deadline

    def begin(self, now: float) -> None:
        """Start the scripted life: schedule the first connection and the plan's events."""
        self._now = now
        connection = self.connection
        connection.want_connected = True
        if self.plan is None:
            connection.connect_at = now
            return
        connection.connect_at = self.script.load(self.plan, self.connectors, self.clock)

    def on_connected(self, now: float, subprotocol: str | None = "ocpp1.6") -> None:
        """The websocket is open."""
        self._now = now
        self.connection.opened()
        self.stats.connects += 1
        if subprotocol != "ocpp1.6":
            self.stats.protocol_error(self.identity, f"server chose subprotocol {subprotocol!r}")
        self.boot.schedule_ping(now)
        if self.boot.required:
            self.boot.enqueue()
        else:
            self.status_reporter.report_changes()
            self.boot.schedule_heartbeat(now)
            self.metering.schedule_aligned(now)
        self._end_step(now)

    def on_connect_failed(self, now: float, reason: str) -> None:
        """A connection attempt failed; try again after a backoff."""
        self._now = now
        self.stats.connect_failures += 1
        if self.stats.connect_failures <= 5:
            self.stats.note(self.identity, f"connect failed: {reason}")
        self.connection.attempt_failed(now)
        if self._stopping and now >= self._stop_deadline:
            self.done = True

    def on_disconnected(self, now: float) -> None:
        """The websocket closed (either side, any reason)."""
        self._now = now
        connection = self.connection
        if not connection.connected:
            return
        connection.closed()
        reconnect, connection.reconnect_requested = connection.reconnect_requested, False
        self.stats.disconnects += 1
        for timer in _CONNECTION_TIMERS:
            self.timers.cancel(timer)
        lost = self.calls.keep_transactional()
        if self.faults.rebooting:
            self.faults.come_back_up(now)
        elif reconnect and not self._stopping:
            connection.want_connected = True
            connection.connect_soon(now)
        elif self._stopping:
            if not self.calls.waiting or now >= self._stop_deadline or not connection.powered:
                self.done = True
            else:
                connection.retry_later(now)
        elif self.auto_reconnect:
            connection.retry_later(now)
        else:
            connection.want_connected = False
        for call in lost:
            call.settle(None, ConnectionLost())
        self._end_step(now)

    def on_frame(self, data: bytes | str, now: float) -> None:
        """A websocket message arrived."""
        self._now = now
        self.stats.messages_received += 1
        frame = parse_frame(data)
        if isinstance(frame, Call):
            self.inbound.on_call(frame, now)
        elif isinstance(frame, CallResult):
            self.calls.on_result(frame, now)
        elif isinstance(frame, CallErrorFrame):
            self.calls.on_call_error(frame, now)
        else:
            if frame.unique_id is not None:
                self.inbound.reply_error(frame.unique_id, frame.code, frame.reason)
            if not self.calls.keep_unparsed(data):
                self.stats.protocol_error(
                    self.identity, f"bad frame from central system: {frame.reason}"
                )
        self._end_step(now)

    def on_timer(self, now: float) -> None:
        """Fire every timer that is due."""
        self._now = now
        self.timers.fire_due(now)
        self._end_step(now)

    def shutdown(self, now: float, reason: StopReason = StopReason.local) -> None:
        """End of the run: stop open transactions cleanly, drain the queue, then close."""
        self._now = now
        if self._stopping:
            return
        self._stopping = True
        self._stop_deadline = now + self.drain_timeout
        self.timers.keep_only(_SHUTDOWN_KEEPS)
        self.timers.start(Timer.SHUTDOWN_DEADLINE, self._stop_deadline)
        self.sessions.stop_all(now, reason)
        if not self.connected and (not self.calls.waiting or not self.connection.powered):
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
        self.send_call(action, payload, callback, transactional=transactional)
        self._end_step(now)

    def send_raw(self, data: bytes, now: float) -> None:
        """Send an arbitrary message; answers to it go to :attr:`raw_inbox`."""
        self._now = now
        self.calls.send_raw(data)

    def reconnect(self, now: float) -> None:
        """Close the connection gracefully and open a new one at once (registration and
        queued transaction messages are kept), e.g. to present a new certificate."""
        self._now = now
        self.connection.reconnect()

    def connect_now(self, now: float) -> None:
        """Ask the shell to connect as soon as possible."""
        self._now = now
        self.connection.connect_now(now)

    def disconnect(self, now: float, *, abrupt: bool = True, reconnect: bool = False) -> None:
        """Drop the connection (by default like a network failure), without reconnecting."""
        self._now = now
        if not reconnect:
            self.connection.want_connected = False
        self.connection.drop(CloseMode.ABRUPT if abrupt else CloseMode.GRACEFUL)

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
        connector = self.connectors[connector_id]
        if not self.sessions.is_free_for(connector, id_tag) or connector.plugged:
            return False
        self.sessions.plug_and_start(
            connector,
            now,
            id_tag,
            ev or self.default_ev,
            authorize=authorize,
            dwell=dwell,
            unplug_after=unplug_after,
            remote=False,
        )
        self._end_step(now)
        return True

    def stop_session(
        self, connector_id: int, now: float, reason: StopReason = StopReason.local
    ) -> bool:
        """The driver ends the transaction (the EV stays plugged)."""
        self._now = now
        stopped = self.sessions.stop(self.connectors[connector_id], now, reason)
        self._end_step(now)
        return stopped

    def unplug(self, connector_id: int, now: float) -> None:
        """The EV leaves (EVDisconnected if a transaction was still running)."""
        self._now = now
        self.sessions.unplug(self.connectors[connector_id], now)
        self._end_step(now)

    def inject_fault(self, fault: PlannedFault, now: float) -> None:
        """Run a scenario fault now."""
        self._now = now
        self.faults.inject(fault, now)
        self._end_step(now)

    def session(self, connector_id: int) -> Session | None:
        """The session on a connector, if any."""
        return self.connectors[connector_id].session

    def status_of(self, connector_id: int) -> ConnectorStatus:
        """A connector's current status."""
        return self.connectors[connector_id].status

    def limit_w(self, connector_id: int, now: float) -> float:
        """The power limit in force on a connector now (hardware and profiles)."""
        return self.metering.offered_w(connector_id, now)

    # ------------------------------------------------------------------ services

    @property
    def now(self) -> float:
        """Loop time of the event being handled."""
        return self._now

    def send_call(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None = None,
        *,
        transactional: bool = False,
        session: Session | None = None,
        front: bool = False,
    ) -> None:
        """Queue one of our CALLs; only transaction messages are queued while offline."""
        if not transactional and not self.connected:
            if callback is not None:
                callback(None, ConnectionLost("not connected"))
            return
        self.calls.enqueue(
            action, payload, callback, transactional=transactional, session=session, front=front
        )

    def after_reply(self, action: AfterReply) -> None:
        """Run ``action`` once the answer to the current CALL is sent."""
        self._after_reply.append(action)

    def discard_after_reply(self) -> None:
        """Forget the work a failed handler left for after its answer."""
        self._after_reply.clear()

    def write_frame(self, data: bytes) -> None:
        """Put one message in the outbox."""
        self.outbox.append(data)
        self.stats.messages_sent += 1

    def boot_queued(self) -> bool:
        """Whether a BootNotification is waiting or in flight."""
        return self.calls.has_pending("BootNotification")

    def request_ping(self) -> None:
        """Ask the shell for a websocket ping."""
        self.connection.ping_requested = True

    def reboot(self, now: float, mode: CloseMode) -> None:
        """Close the connection (``mode``) and come back up."""
        self.faults.reboot(now, mode)

    def use_new_certificate(self) -> None:
        """Ask the shell to present the new certificate (see :meth:`reconnect`)."""
        self.connection.new_certificate = True

    def security_event(self, kind: str, now: float, tech_info: str = "") -> None:
        """SecurityEventNotification."""
        self.security.send_event(kind, now, tech_info)

    # ------------------------------------------------------------------ the end of a step

    def _end_step(self, now: float) -> None:
        while self._after_reply:
            pending, self._after_reply = self._after_reply, []
            for action in pending:
                action(now)
        if self.connection.online:
            self.calls.send_next(now, boot_only=self.boot.required)
        self.faults.check_soft_reset(now)
        if self._stopping and not self.done:
            self._check_shutdown(now)

    def _check_shutdown(self, now: float) -> None:
        drained = self.calls.drained
        if drained or now >= self._stop_deadline:
            if self.connected:
                if self.close_request is None:
                    self.close_request = CloseMode.GRACEFUL
            else:
                self.done = True
        if self.done and self.calls.waiting:
            unsent = self.calls.drop_all()
            if unsent:
                self.stats.dropped_messages += unsent
                self.stats.note(self.identity, f"{unsent} transaction message(s) never sent")

    def _registered(self, now: float, after_boot: bool) -> None:
        """The central system accepted a BootNotification."""
        self.metering.schedule_aligned(now)
        if after_boot:
            self.status_reporter.report_changes()
            if self.config.get_bool("SimSecurityEventOnBoot"):
                # SecWP §8: StartupOfTheDevice is critical, pushed at once (A04.FR.01).
                self.security.send_event("StartupOfTheDevice", now)
            self.firmware_updates.rebooted()

    # ------------------------------------------------------------------ DataTransfer

    def _data_transfer(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """DataTransfer: our vendor's Echo message answers with its data."""
        if payload["vendorId"] != self.info.vendor:
            return {"status": "UnknownVendorId"}
        message_id = payload.get("messageId")
        if message_id not in (None, "Echo"):
            return {"status": "UnknownMessageId"}
        response: dict[str, Any] = {"status": "Accepted"}
        if "data" in payload:
            response["data"] = payload["data"]
        return response

    # ------------------------------------------------------------------ state, by name

    # The station's attributes from before its parts were split out, kept by the parts.
    connected = _Forwarded[bool]("connection", "connected")
    want_connected = _Forwarded[bool]("connection", "want_connected")
    close_request = _Forwarded[CloseMode | None]("connection", "close_request")
    ping_requested = _Forwarded[bool]("connection", "ping_requested")
    new_certificate = _Forwarded[bool]("connection", "new_certificate")
    online = _Forwarded[bool]("connection", "online")
    powered = _Forwarded[bool]("connection", "powered")
    unreachable = _Forwarded[bool]("connection", "unreachable")
    calls_drained = _Forwarded[bool]("calls", "drained")
    raw_inbox = _Forwarded[deque[bytes]]("calls", "raw_inbox")
    registration = _Forwarded[Registration]("boot", "registration")
    boot_required = _Forwarded[bool]("boot", "required")
    incoming_hook = _Forwarded[Callable[[IncomingCall], None] | None]("inbound", "incoming_hook")
    security_extension = _Forwarded[bool]("inbound", "security_extension")
    completed = _Forwarded[list[SessionRecord]]("sessions", "completed")
    default_ev = _Forwarded[EvSpec]("sessions", "default_ev")
    firmware = _Forwarded[str]("firmware_updates", "version")
    fw_status = _Forwarded[FirmwareStatus]("firmware_updates", "status")
    signed_fw_status = _Forwarded[SignedFirmwareStatus]("firmware_updates", "signed_status")
    diag_status = _Forwarded[DiagnosticsStatus]("diagnostics", "status")
    log_status = _Forwarded[LogStatus]("diagnostics", "log_status")
    keys = _Forwarded[ChargerKeys]("security", "keys")
    certificates = _Forwarded[CertificateStore]("security", "certificates")
    local_list = _Forwarded[dict[str, dict[str, Any]]]("authorization", "local_list")
    local_list_version = _Forwarded[int]("authorization", "local_list_version")
    auth_cache = _Forwarded[dict[str, dict[str, Any]]]("authorization", "cache")

    @property
    def validate_outbound(self) -> bool:
        """Whether what we send (CALLs and answers) is checked against the 1.6 schemas."""
        return self.calls.validate_outbound

    @validate_outbound.setter
    def validate_outbound(self, value: bool) -> None:
        self.calls.validate_outbound = self.inbound.validate_outbound = value
