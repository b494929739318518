"""Registration and keep-alive: BootNotification until Accepted (OCPP 1.6 §4.2), Heartbeat
(§4.6), and the websocket ping of WebSocketPingInterval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .metering import MIN_PERIOD
from .model import ChargerInfo, Registration
from .ocppj import CallError
from .services import Services
from .timers import Timer

__all__ = ["Boot", "BootServices"]

BOOT_RETRY_DEFAULT = 60  # simulated seconds between boots when the answer names no interval


class BootServices(Services, Protocol):
    """What registration needs besides the common services."""

    @property
    def connected(self) -> bool: ...

    @property
    def firmware(self) -> str:
        """The firmware version to announce."""
        ...

    def boot_queued(self) -> bool:
        """Whether a BootNotification is already waiting or in flight."""
        ...

    def request_ping(self) -> None:
        """Ask the shell for a websocket ping."""
        ...


class Boot:
    """Where the charger stands with the central system, and its keep-alives."""

    def __init__(
        self,
        services: BootServices,
        *,
        info: ChargerInfo,
        required: bool,
        retry_after_error: float,
        accepted: Callable[[float, bool], None],
    ) -> None:
        """
        Args:
            required: whether a BootNotification must be accepted before anything else.
            retry_after_error: loop seconds before booting again after no (valid) answer.
            accepted: told (now, whether this ends a boot) when the central system accepts.
        """
        self._services = services
        self._info = info
        self.registration = Registration.NONE
        self.required = required
        self._retry_after_error = retry_after_error
        self._accepted = accepted
        services.timers.handle(Timer.BOOT_RETRY, self._retry_due)
        services.timers.handle(Timer.HEARTBEAT, self._heartbeat_due)
        services.timers.handle(Timer.WEBSOCKET_PING, self._ping_due)

    # -- BootNotification

    def payload(self) -> dict[str, Any]:
        """The BootNotification.req this charger sends."""
        return self._info.boot_payload(self._services.firmware)

    def enqueue(self) -> None:
        """Queue a BootNotification ahead of everything else, unless one is on its way."""
        if self._services.boot_queued():
            return
        self._services.send_call("BootNotification", self.payload(), self.answered, front=True)

    def send_triggered(self) -> None:
        """A BootNotification that TriggerMessage asked for (queued in turn)."""
        self._services.send_call("BootNotification", self.payload(), self.answered)

    def answered(self, result: dict[str, Any] | None, error: CallError | None) -> None:
        """The central system answered a BootNotification (or it failed)."""
        services = self._services
        now = services.now
        if result is None:
            if self.required and services.connected:
                services.timers.start(Timer.BOOT_RETRY, now + self._retry_after_error)
            return
        status = result.get("status")
        interval = result.get("interval")
        interval = interval if isinstance(interval, int) and interval >= 0 else 0
        if status == "Accepted":
            self.registration = Registration.ACCEPTED
            services.stats.boots_accepted += 1
            was_required = self.required
            self.required = False
            if interval > 0:
                services.config.set("HeartbeatInterval", interval)
            self.schedule_heartbeat(now)
            self._accepted(now, was_required)
        else:
            self.registration = (
                Registration.PENDING if status == "Pending" else Registration.REJECTED
            )
            if self.required:
                # OCPP 1.6 §4.2.1: not before the interval; nothing else until Accepted.
                retry_at = services.clock.after(now, interval or BOOT_RETRY_DEFAULT)
                services.timers.start(Timer.BOOT_RETRY, retry_at)

    def _retry_due(self, _connector_id: int, now: float) -> None:
        if self._services.connected and self.required:
            self.enqueue()

    def restart(self) -> None:
        """The charger rebooted: it must register again."""
        self.registration = Registration.NONE
        self.required = True

    # -- Heartbeat

    def schedule_heartbeat(self, now: float) -> None:
        """Next Heartbeat after HeartbeatInterval (simulated seconds), once registered."""
        services = self._services
        interval = services.config.get_int("HeartbeatInterval")
        if interval > 0 and self.registration is Registration.ACCEPTED and services.connected:
            at = now + max(interval / services.clock.speed, MIN_PERIOD)
            services.timers.start(Timer.HEARTBEAT, at)
        else:
            services.timers.cancel(Timer.HEARTBEAT)

    def _heartbeat_due(self, _connector_id: int, now: float) -> None:
        if self._services.connected and not self.required:
            self._services.send_call("Heartbeat", {})
        self.schedule_heartbeat(now)

    # -- websocket ping

    def schedule_ping(self, now: float) -> None:
        """WebSocketPingInterval is a network timer: real seconds, not simulated ones."""
        services = self._services
        interval = services.config.get_int("WebSocketPingInterval")
        if interval > 0 and services.connected:
            services.timers.start(Timer.WEBSOCKET_PING, now + interval)
        else:
            services.timers.cancel(Timer.WEBSOCKET_PING)

    def _ping_due(self, _connector_id: int, now: float) -> None:
        if self._services.connected:
            self._services.request_ping()
        self.schedule_ping(now)
