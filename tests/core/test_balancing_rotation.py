"""Idle detection and the rotation of minimum slots (docs/load-balancing.md, "Idle cars and
rotation"): pure, time passed in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.allocator import Demand, Node, allocate
from csms.core.balancing import IdleTracker, Turn, reoffer_s, rotation

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
KEY = ("cp", 1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_suspended_ev_while_offered_current_becomes_idle_after_a_while() -> None:
    idle = IdleTracker(idle_after_s=300)
    idle.start(KEY, serving=False, since=at(0))
    idle.on_limit(KEY, limit_da=60, now=at(10))
    assert not idle.on_status(KEY, status="SuspendedEV", now=at(20))
    assert not idle.check(KEY, at(319))
    assert idle.check(KEY, at(320))
    assert idle.turn(KEY, order=1, now=at(321)).idle
    # Charging again ends it.
    assert idle.on_status(KEY, status="Charging", now=at(400))
    assert not idle.turn(KEY, order=1, now=at(401)).idle


def test_a_car_at_zero_amps_never_becomes_idle() -> None:
    """At 0 A the charger suspends the car: its silence proves nothing."""
    idle = IdleTracker(idle_after_s=300)
    idle.start(KEY, serving=False, since=at(0))
    idle.on_status(KEY, status="SuspendedEV", now=at(1))
    idle.on_draw(KEY, phases_da=(0, 0, 0), now=at(2))
    assert not idle.check(KEY, at(10_000))


def test_a_near_zero_draw_counts_as_quiet_and_a_real_draw_ends_it() -> None:
    idle = IdleTracker(idle_after_s=60)
    idle.start(KEY, serving=True, since=at(0))
    idle.on_draw(KEY, phases_da=(3, 2, 0), now=at(100))
    assert idle.on_draw(KEY, phases_da=(4, 0, 0), now=at(160))
    assert idle.on_draw(KEY, phases_da=(62, 61, 60), now=at(170))
    assert not idle.turn(KEY, order=1, now=at(171)).idle


def test_offered_current_again_an_idle_car_must_prove_it_anew() -> None:
    idle = IdleTracker(idle_after_s=60)
    idle.start(KEY, serving=True, since=at(0))
    idle.on_status(KEY, status="SuspendedEV", now=at(0))
    assert idle.check(KEY, at(60))
    idle.on_limit(KEY, limit_da=0, now=at(61))
    assert idle.turn(KEY, order=1, now=at(62)).idle  # released, still idle
    idle.on_limit(KEY, limit_da=60, now=at(2000))
    assert not idle.turn(KEY, order=1, now=at(2001)).idle
    idle.on_status(KEY, status="SuspendedEV", now=at(2002))
    assert idle.turn(KEY, order=1, now=at(2062)).idle


def turn(name: str, serving: bool, since: float, *, idle: bool = False, order: int = 0) -> Turn:
    return Turn((name, 1), order, serving, at(since), idle)


def test_within_its_turn_a_session_keeps_its_slot_then_the_waiting_go_first() -> None:
    turns = [turn("old", True, 0), turn("new", True, 1000), turn("wait", False, 500)]
    early = rotation(turns, now=at(1200), rotate_s=1800)
    assert sorted(early.order, key=early.order.__getitem__) == [
        ("new", 1),
        ("old", 1),
        ("wait", 1),
    ]
    late = rotation(turns, now=at(1900), rotate_s=1800)
    assert sorted(late.order, key=late.order.__getitem__) == [
        ("new", 1),
        ("wait", 1),
        ("old", 1),
    ]


def test_an_idle_car_waiting_a_whole_turn_is_offered_its_minimum_again() -> None:
    turns = [turn("full", False, 0, idle=True)]
    assert rotation(turns, now=at(100), rotate_s=1800).idle == {("full", 1)}
    assert rotation(turns, now=at(1800), rotate_s=1800).idle == frozenset()
    serving = [turn("full", True, 0, idle=True)]
    assert rotation(serving, now=at(5000), rotate_s=1800).idle == {("full", 1)}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 5000), st.booleans()), min_size=0, max_size=12
    ),
    st.randoms(use_true_random=False),
)
def test_the_rotation_is_deterministic_and_independent_of_input_order(
    raw: list[tuple[bool, int, bool]], rng: random.Random
) -> None:
    turns = [
        turn(f"c{i}", serving, since, idle=idle) for i, (serving, since, idle) in enumerate(raw)
    ]
    shuffled = turns[:]
    rng.shuffle(shuffled)
    assert rotation(turns, now=at(6000), rotate_s=1800) == rotation(
        shuffled, now=at(6000), rotate_s=1800
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=16), st.integers(min_value=1, max_value=6))
def test_every_car_charges_within_its_rounds(cars: int, slots: int) -> None:
    """More cars than minimum slots: run the allocator minute by minute with the rotation,
    applying every limit at once. Every car is served within ceil(cars / slots) turns, and
    the circuit is never over its limit."""
    rotate_s, step_s = 1800, 60
    limit = slots * 60 + 59
    nodes = [Node("site", None, (limit, limit, limit))]
    idle = IdleTracker(idle_after_s=300)
    keys = [(f"c{n}", 1) for n in range(cars)]
    for key in keys:
        idle.start(key, serving=False, since=T0)
    first_served: dict[tuple[str, int], int] = {}
    rounds = -(-cars // slots)
    horizon = rounds * rotate_s + rotate_s
    for second in range(0, horizon, step_s):
        now = at(second)
        turns = [idle.turn(key, order=n, now=now) for n, key in enumerate(keys)]
        rotated = rotation(turns, now=now, rotate_s=rotate_s)
        demands = [
            Demand(key, "site", (0, 1, 2), 60, 320, order=rotated.order[key]) for key in keys
        ]
        grants = allocate(nodes, demands)
        assert sum(grant.limit_da for grant in grants.values()) <= limit
        for key, grant in grants.items():
            idle.on_limit(key, limit_da=grant.limit_da, now=now)
            if grant.limit_da:
                first_served.setdefault(key, second)
    assert set(first_served) == set(keys)
    assert max(first_served.values()) <= (rounds - 1) * rotate_s + step_s


def test_an_idle_car_found_idle_again_waits_twice_as_long() -> None:
    idle = IdleTracker(idle_after_s=60)
    idle.start(KEY, serving=True, since=at(0))
    idle.on_status(KEY, status="SuspendedEV", now=at(0))
    assert idle.check(KEY, at(60))
    idle.on_limit(KEY, limit_da=0, now=at(100))  # released
    assert idle.turn(KEY, order=1, now=at(100)).idle_times == 1
    idle.on_limit(KEY, limit_da=60, now=at(1900))  # offered again after one turn
    idle.on_status(KEY, status="SuspendedEV", now=at(1901))
    idle.on_limit(KEY, limit_da=0, now=at(1990))  # still full: released again
    again = idle.turn(KEY, order=1, now=at(1990))
    assert (again.idle, again.idle_times) == (True, 2)
    assert rotation([again], now=at(1990 + 1800), rotate_s=1800).idle == {KEY}
    assert rotation([again], now=at(1990 + 3600), rotate_s=1800).idle == frozenset()
    # Drawing again starts over.
    idle.on_limit(KEY, limit_da=60, now=at(6000))
    idle.on_draw(KEY, phases_da=(60, 60, 60), now=at(6010))
    assert idle.turn(KEY, order=1, now=at(6011)).idle_times == 0


def test_the_reoffer_wait_doubles_up_to_eight_turns() -> None:
    assert [reoffer_s(n, 1800) for n in range(6)] == [1800, 1800, 3600, 7200, 14400, 14400]
