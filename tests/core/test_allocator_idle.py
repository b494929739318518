"""Idle cars in the allocator: full cars give their slot to hungry ones, and are held at
their minimum only when nobody needs it (docs/load-balancing.md, "Idle cars and rotation")."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.allocator import Demand, Node, Reason, allocate, violations

THREE = (0, 1, 2)
SITE = [Node("site", None, (315, 315, 315))]  # 32 A less the 0.5 A margin


def car(n: int, *, idle: bool = False, priority: int = 0) -> Demand:
    return Demand(
        key=(f"c{n}", 1),
        node_id="site",
        phases=THREE,
        min_da=60,
        max_da=320,
        priority=priority,
        order=n,
        idle=idle,
    )


def test_full_cars_give_their_slots_to_the_queue() -> None:
    """Ten cars on 31.5 A: the five first comers are full, so the five others charge."""
    cars = [car(n, idle=n < 5) for n in range(10)]
    grants = allocate(SITE, cars)
    assert [grants[c.key].limit_da for c in cars] == [0] * 5 + [63] * 5
    assert all(grants[c.key].reason is Reason.QUEUED for c in cars[:5])


def test_an_idle_car_is_held_at_its_minimum_when_there_is_room() -> None:
    """Room left over: the idle car keeps 6 A so it can resume; the rest goes to the
    hungry car (study §3.4: hold at min rather than pause)."""
    grants = allocate(SITE, [car(0, idle=True), car(1)])
    assert grants["c0", 1] == (60, Reason.IDLE, None, None)
    assert grants["c1", 1].limit_da == 255


def test_an_idle_car_of_higher_priority_does_not_block_a_hungry_one() -> None:
    cars = [car(n, priority=1, idle=True) for n in range(5)] + [car(5)]
    grants = allocate(SITE, cars)
    assert grants["c5", 1].limit_da >= 60
    assert sum(1 for c in cars[:5] if grants[c.key].limit_da) == 4


@st.composite
def crowds(draw: st.DrawFn) -> list[Demand]:
    """Up to 16 three-phase cars with a 6 A minimum on one node, some idle."""
    return [
        Demand(
            key=(f"c{n}", 1),
            node_id="site",
            phases=THREE,
            min_da=60,
            max_da=60 + draw(st.integers(min_value=0, max_value=260)),
            priority=draw(st.integers(min_value=0, max_value=2)),
            order=draw(st.integers(min_value=0, max_value=20)),
            idle=draw(st.booleans()),
        )
        for n in range(draw(st.integers(min_value=0, max_value=16)))
    ]


@settings(max_examples=300, deadline=None)
@given(crowds(), st.integers(min_value=0, max_value=700))
def test_idle_cars_never_hold_a_slot_a_hungry_car_waits_for(cars: list[Demand], limit: int) -> None:
    """No overload; idle cars get 0 or exactly their minimum; an idle car holds current
    only when no hungry car is queued; and the slots are all used."""
    nodes = [Node("site", None, (limit, limit, limit))]
    grants = allocate(nodes, cars)
    assert violations(nodes, cars, grants) == []
    idle = [grants[c.key].limit_da for c in cars if c.idle]
    hungry_queued = [c for c in cars if not c.idle and grants[c.key].limit_da == 0]
    assert all(v in (0, 60) for v in idle)
    if hungry_queued:
        assert not any(idle)
    served = sum(1 for c in cars if grants[c.key].limit_da > 0)
    assert served == min(len(cars), limit // 60)


@settings(max_examples=200, deadline=None)
@given(crowds(), st.integers(min_value=0, max_value=700), st.randoms(use_true_random=False))
def test_with_idle_cars_the_pass_is_deterministic_and_independent_of_input_order(
    cars: list[Demand], limit: int, rng: random.Random
) -> None:
    nodes = [Node("site", None, (limit, limit, limit))]
    shuffled = cars[:]
    rng.shuffle(shuffled)
    assert allocate(nodes, cars) == allocate(nodes, shuffled)
