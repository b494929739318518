"""One charger's timers: named deadlines in loop time, each handled by the part that owns it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum, auto
from typing import Final

__all__ = ["WHOLE_CHARGER", "Timer", "TimerHandler", "Timers"]

WHOLE_CHARGER: Final = 0  # the connector id of timers that are not about one connector

TimerHandler = Callable[[int, float], None]  # (connector id, loop time)


class Timer(IntEnum):
    """What a timer is for.

    Timers due at the same instant fire in the order declared here. That order decides
    which CALL gets queued first, so it is part of what the simulator is seen to do: put
    a new kind where it should fire, not simply at the end.
    """

    CLOCK_ALIGNED_METER = auto()
    ARRIVAL = auto()
    BOOT_RETRY = auto()
    FAULT_CLEARED = auto()
    DEPARTURE = auto()
    DIAGNOSTICS_UPLOAD = auto()
    FIRMWARE_STEP = auto()
    HEARTBEAT = auto()
    LOG_UPLOAD = auto()
    METER_SAMPLE = auto()
    WEBSOCKET_PING = auto()
    POWER_RESTORED = auto()
    RESERVATION_EXPIRY = auto()
    SOFT_RESET_DEADLINE = auto()
    CALL_RETRY = auto()
    SCENARIO_SCRIPT = auto()
    SIGNED_FIRMWARE_STEP = auto()
    SHUTDOWN_DEADLINE = auto()
    CALL_TIMEOUT = auto()
    UNPLUG = auto()


class Timers:
    """Deadlines by (timer, connector id); at most one of each pair is pending.

    A timer without a handler only wakes the charger up: the end of every step checks
    the deadlines (soft reset, shutdown, a retry becoming due) by itself.
    """

    def __init__(self) -> None:
        self._deadlines: dict[tuple[Timer, int], float] = {}
        self._handlers: dict[Timer, TimerHandler] = {}

    def handle(self, timer: Timer, handler: TimerHandler) -> None:
        """Call ``handler(connector_id, now)`` when a ``timer`` is due."""
        self._handlers[timer] = handler

    def start(self, timer: Timer, at: float, connector_id: int = WHOLE_CHARGER) -> None:
        """Set (or move) a deadline."""
        self._deadlines[(timer, connector_id)] = at

    def cancel(self, timer: Timer, connector_id: int = WHOLE_CHARGER) -> None:
        """Forget a deadline, if it is set."""
        self._deadlines.pop((timer, connector_id), None)

    def is_set(self, timer: Timer, connector_id: int = WHOLE_CHARGER) -> bool:
        """Whether a deadline is pending."""
        return (timer, connector_id) in self._deadlines

    def cancel_kinds(self, timers: Iterable[Timer]) -> None:
        """Forget every deadline of these kinds, whatever the connector."""
        kinds = set(timers)
        for key in [key for key in self._deadlines if key[0] in kinds]:
            del self._deadlines[key]

    def keep_only(self, timers: Iterable[Timer]) -> None:
        """Forget every deadline except those of these kinds."""
        kinds = set(timers)
        self._deadlines = {key: at for key, at in self._deadlines.items() if key[0] in kinds}

    def next_deadline(self) -> float | None:
        """The earliest deadline, None if none is set."""
        return min(self._deadlines.values()) if self._deadlines else None

    def fire_due(self, now: float) -> None:
        """Run the handlers of every deadline that is due, earliest first.

        A handler may move or cancel a later one of the same batch; that one then waits
        for its new deadline (or is gone).
        """
        deadlines = self._deadlines
        due = sorted((at, key) for key, at in deadlines.items() if at <= now)
        for at, key in due:
            if deadlines.get(key) != at:
                continue
            del deadlines[key]
            timer, connector_id = key
            handler = self._handlers.get(timer)
            if handler is not None:
                handler(connector_id, now)
