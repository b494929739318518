"""A charger's scenario plan played out: EV arrivals and faults at their simulated times."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .clock import Clock
from .model import Connector
from .scenario import ChargerPlan, PlannedFault, PlannedSession
from .timers import Timer, Timers

__all__ = ["ScenarioScript"]


class ScenarioScript:
    """The first visit of each connector and every fault, in time order.

    Later visits to a connector are scheduled by the sessions as each EV leaves (a visit's
    arrival is counted from the previous departure).
    """

    def __init__(
        self,
        timers: Timers,
        *,
        arrive: Callable[[PlannedSession, float], None],
        inject: Callable[[PlannedFault, float], None],
    ) -> None:
        self._timers = timers
        self._arrive = arrive
        self._inject = inject
        self._events: list[tuple[float, PlannedSession | PlannedFault]] = []
        self._position = 0
        timers.handle(Timer.SCENARIO_SCRIPT, self._due)

    @property
    def finished(self) -> bool:
        """Whether every scripted event has happened."""
        return self._position >= len(self._events)

    def load(self, plan: ChargerPlan, connectors: list[Connector], clock: Clock) -> float:
        """Schedule the plan's events; returns the loop time of the first connection."""
        events: list[tuple[float, PlannedSession | PlannedFault]] = []
        for connector, visits in zip(connectors[1:], plan.sessions, strict=False):
            connector.visits = deque(visits)
            if connector.visits:
                first = connector.visits.popleft()
                connector.next_visit = first
                events.append((_loop_time_of(clock, first.arrival), first))
        events.extend((_loop_time_of(clock, fault.at), fault) for fault in plan.faults)
        events.sort(key=lambda item: item[0])
        self._events = events
        self._position = 0
        if events:
            self._timers.start(Timer.SCENARIO_SCRIPT, events[0][0])
        return _loop_time_of(clock, plan.connect_at)

    def _due(self, _connector_id: int, now: float) -> None:
        events = self._events
        while self._position < len(events) and events[self._position][0] <= now:
            _, event = events[self._position]
            self._position += 1
            if isinstance(event, PlannedSession):
                self._arrive(event, now)
            else:
                self._inject(event, now)
        if self._position < len(events):
            self._timers.start(Timer.SCENARIO_SCRIPT, events[self._position][0])


def _loop_time_of(clock: Clock, offset: float) -> float:
    """Loop time of a scenario offset (simulated seconds from the run start)."""
    return clock.real0 + offset / clock.speed
