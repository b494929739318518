"""The charger's timer table on its own: ordering, moving and cancelling deadlines."""

from __future__ import annotations

import pytest

from simulators.timers import WHOLE_CHARGER, Timer, Timers


def recording(timers: Timers, fired: list[tuple[Timer, int, float]], *kinds: Timer) -> None:
    """Make each of ``kinds`` append (timer, connector id, now) to ``fired``."""
    for kind in kinds:
        timers.handle(
            kind, lambda connector_id, now, kind=kind: fired.append((kind, connector_id, now))
        )


def test_due_timers_fire_earliest_first_then_in_declared_order() -> None:
    """Timers due together fire by deadline, then by their declared order, then connector."""
    timers = Timers()
    fired: list[tuple[Timer, int, float]] = []
    recording(timers, fired, Timer.HEARTBEAT, Timer.METER_SAMPLE, Timer.CLOCK_ALIGNED_METER)
    timers.start(Timer.METER_SAMPLE, 10.0, 2)
    timers.start(Timer.METER_SAMPLE, 10.0, 1)
    timers.start(Timer.HEARTBEAT, 10.0)
    timers.start(Timer.CLOCK_ALIGNED_METER, 10.0)
    timers.start(Timer.HEARTBEAT, 5.0, 3)
    timers.fire_due(10.0)
    assert fired == [
        (Timer.HEARTBEAT, 3, 10.0),
        (Timer.CLOCK_ALIGNED_METER, WHOLE_CHARGER, 10.0),
        (Timer.HEARTBEAT, WHOLE_CHARGER, 10.0),
        (Timer.METER_SAMPLE, 1, 10.0),
        (Timer.METER_SAMPLE, 2, 10.0),
    ]
    assert timers.next_deadline() is None


def test_a_handler_can_move_or_cancel_a_later_timer_of_the_same_batch() -> None:
    """A timer moved or cancelled by an earlier handler of the batch does not fire now."""
    timers = Timers()
    fired: list[Timer] = []
    timers.handle(Timer.HEARTBEAT, lambda _c, _now: fired.append(Timer.HEARTBEAT))
    timers.handle(Timer.UNPLUG, lambda _c, _now: fired.append(Timer.UNPLUG))

    def first(_connector_id: int, now: float) -> None:
        fired.append(Timer.ARRIVAL)
        timers.start(Timer.HEARTBEAT, now + 30.0)
        timers.cancel(Timer.UNPLUG, 1)

    timers.handle(Timer.ARRIVAL, first)
    for kind, connector_id in ((Timer.ARRIVAL, 1), (Timer.HEARTBEAT, 0), (Timer.UNPLUG, 1)):
        timers.start(kind, 1.0, connector_id)
    timers.fire_due(1.0)
    assert fired == [Timer.ARRIVAL]
    assert timers.next_deadline() == 31.0


@pytest.mark.parametrize(
    ("operation", "left"),
    [
        ("cancel_kinds", {(Timer.UNPLUG, 1)}),
        ("keep_only", {(Timer.METER_SAMPLE, 1), (Timer.METER_SAMPLE, 2)}),
    ],
)
def test_bulk_cancelling(operation: str, left: set[tuple[Timer, int]]) -> None:
    """cancel_kinds forgets the kinds named, whatever the connector; keep_only the others."""
    timers = Timers()
    for key in ((Timer.METER_SAMPLE, 1), (Timer.METER_SAMPLE, 2), (Timer.UNPLUG, 1)):
        timers.start(key[0], 1.0, key[1])
    getattr(timers, operation)([Timer.METER_SAMPLE])
    every = [(kind, n) for kind in Timer for n in range(3)]
    assert {key for key in every if timers.is_set(*key)} == left


def test_a_timer_without_handler_only_wakes_up() -> None:
    """A deadline with no handler is consumed silently (the step's end checks the rest)."""
    timers = Timers()
    timers.start(Timer.SHUTDOWN_DEADLINE, 2.0)
    assert timers.next_deadline() == 2.0
    timers.fire_due(2.0)
    assert not timers.is_set(Timer.SHUTDOWN_DEADLINE)
