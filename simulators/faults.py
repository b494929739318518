"""Faults and resets: connector faults, network outages and power cuts from a scenario,
Reset from the central system (OCPP 1.6 §5.14), and coming back up after any of them."""

from __future__ import annotations

from typing import Any, Protocol

from .boot import Boot
from .connection import Connection
from .model import CloseMode, Connector, FaultInfo, StopReason
from .scenario import FaultKind, PlannedFault
from .services import Services
from .sessions import Sessions
from .smart import ProfileStore
from .status import StatusReporter
from .timers import Timer

__all__ = ["FaultServices", "FaultsAndResets"]


class FaultServices(Services, Protocol):
    """What faults and resets need besides the common services."""

    @property
    def stopping(self) -> bool:
        """The run is ending: no new faults, and no reconnect after a reboot."""
        ...

    @property
    def calls_drained(self) -> bool:
        """No CALL of ours is waiting or in flight."""
        ...


class FaultsAndResets:
    """Faults, outages, power cuts, resets and reboots of one charger."""

    def __init__(
        self,
        services: FaultServices,
        connectors: list[Connector],
        *,
        connection: Connection,
        sessions: Sessions,
        status: StatusReporter,
        boot: Boot,
        profiles: ProfileStore,
        drain_timeout: float,
    ) -> None:
        self._services = services
        self._connectors = connectors
        self._connection = connection
        self._sessions = sessions
        self._status = status
        self._boot = boot
        self._profiles = profiles
        self._drain_timeout = drain_timeout  # loop seconds a soft reset waits for the queue
        self.rebooting = False  # the connection is closing for a reboot
        self._soft_reset_deadline: float | None = None
        timers = services.timers
        timers.handle(Timer.FAULT_CLEARED, self._fault_cleared)
        timers.handle(Timer.POWER_RESTORED, self._power_restored)

    # -- faults

    def inject(self, fault: PlannedFault, now: float) -> None:
        """Run a scenario fault now (none while the run is ending)."""
        if self._services.stopping:
            return
        connection = self._connection
        if fault.kind is FaultKind.FAULTED:
            connector = self._connectors[fault.connector_id]
            connector.fault = FaultInfo(fault.error_code, fault.vendor_error_code, fault.info)
            affected = self._connectors[1:] if connector.id == 0 else [connector]
            for each in affected:
                self._sessions.stop(each, now, StopReason.other, quiet=True)
            cleared_at = self._services.clock.after(now, fault.duration)
            self._services.timers.start(Timer.FAULT_CLEARED, cleared_at, connector.id)
            self._status.refresh_all()
        elif fault.kind is FaultKind.DISCONNECT:
            connection.drop(CloseMode.ABRUPT)
        elif fault.kind is FaultKind.OFFLINE:
            connection.offline_until = self._services.clock.after(now, fault.duration)
            connection.drop(CloseMode.ABRUPT)
        elif fault.kind is FaultKind.POWER_CUT:
            self._cut_power(now, fault.duration)

    def _fault_cleared(self, connector_id: int, now: float) -> None:
        self._connectors[connector_id].fault = None
        self._status.refresh_all()

    def _cut_power(self, now: float, duration: float) -> None:
        self._sessions.stop_all(now, StopReason.power_loss, quiet=True)
        self._connection.powered = False
        timers = self._services.timers
        timers.cancel_kinds(
            (Timer.HEARTBEAT, Timer.BOOT_RETRY, Timer.CLOCK_ALIGNED_METER, Timer.FIRMWARE_STEP)
        )
        timers.start(Timer.POWER_RESTORED, self._services.clock.after(now, duration))
        self._connection.drop(CloseMode.ABRUPT)

    def _power_restored(self, _connector_id: int, now: float) -> None:
        self._connection.powered = True
        self.come_back_up(now)

    # -- resets

    def reset(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """Reset: Hard drops everything at once; Soft stops the transactions first."""
        hard = payload["type"] == "Hard"
        self._services.after_reply(lambda later: self._begin_reset(later, hard=hard))
        return {"status": "Accepted"}

    def _begin_reset(self, now: float, *, hard: bool) -> None:
        if hard:
            self._sessions.stop_all(now, StopReason.hard_reset, quiet=True)
            self.reboot(now, CloseMode.ABRUPT)
            return
        self._sessions.stop_all(now, StopReason.soft_reset)
        self._soft_reset_deadline = now + self._drain_timeout
        self._services.timers.start(Timer.SOFT_RESET_DEADLINE, self._soft_reset_deadline)

    def check_soft_reset(self, now: float) -> None:
        """A soft reset reboots once its StopTransactions are out, or at its deadline."""
        deadline = self._soft_reset_deadline
        if deadline is None:
            return
        if self._services.calls_drained or now >= deadline or not self._connection.connected:
            self._soft_reset_deadline = None
            self._services.timers.cancel(Timer.SOFT_RESET_DEADLINE)
            self.reboot(now, CloseMode.GRACEFUL)

    def reboot(self, now: float, mode: CloseMode) -> None:
        """Close the connection (``mode``) and come back up once it is closed."""
        if self._connection.connected:
            self.rebooting = True
            self._connection.close_request = mode
        else:
            self.come_back_up(now)

    def come_back_up(self, now: float) -> None:
        """Boot again and report every status; queued transaction messages are kept."""
        self.rebooting = False
        self._boot.restart()
        self._services.timers.cancel_kinds(
            (Timer.HEARTBEAT, Timer.BOOT_RETRY, Timer.CLOCK_ALIGNED_METER)
        )
        self._status.forget_reported()
        for connector in self._connectors:
            self._profiles.end_transaction(connector.id)
        self._status.refresh_all()
        self._connection.connect_soon(now)
        if not self._services.stopping:
            self._connection.want_connected = True
