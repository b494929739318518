"""Properties of the circuit allocator over generated trees and sessions (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.allocator import PHASES, Demand, Grant, Node, Reason, allocate, violations

PHASE_SETS = [(0,), (1,), (2,), (0, 1, 2)]


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[list[Node], list[Demand]]:
    """A tree of up to 3 levels and up to 12 sessions with mixed phases and priorities."""
    count = draw(st.integers(min_value=1, max_value=6))
    nodes: list[Node] = []
    for i in range(count):
        parent = None if i == 0 else f"n{draw(st.integers(min_value=0, max_value=i - 1))}"
        limit = tuple(draw(st.integers(min_value=0, max_value=800)) for _ in range(PHASES))
        reserved = tuple(draw(st.integers(min_value=0, max_value=100)) for _ in range(PHASES))
        nodes.append(Node(f"n{i}", parent, limit, reserved))  # type: ignore[arg-type]
    demands = []
    for j in range(draw(st.integers(min_value=0, max_value=12))):
        low = draw(st.sampled_from([0, 60, 60, 60, 80, 100]))
        demands.append(
            Demand(
                key=(f"cp{j}", 1),
                node_id=f"n{draw(st.integers(min_value=0, max_value=count - 1))}",
                phases=draw(st.sampled_from(PHASE_SETS)),
                min_da=low,
                max_da=low + draw(st.integers(min_value=0, max_value=300)),
                priority=draw(st.integers(min_value=0, max_value=2)),
                order=j,
                fixed_da=draw(st.one_of(st.none(), st.none(), st.integers(0, 100))),
                step_da=draw(st.sampled_from([1, 1, 10])),
            )
        )
    return nodes, demands


def _ancestors(nodes: list[Node], node_id: str) -> list[str]:
    by_id = {node.node_id: node for node in nodes}
    chain: list[str] = []
    current: str | None = node_id
    while current is not None:
        chain.append(current)
        current = by_id[current].parent_id
    return chain


def _remaining(nodes: list[Node], demands: list[Demand], grants: dict[object, Grant]) -> dict:
    left = {(n.node_id, p): n.limit[p] - n.reserved[p] for n in nodes for p in range(PHASES)}
    for demand in demands:
        value = grants[demand.key].limit_da
        for node_id in _ancestors(nodes, demand.node_id):
            for p in demand.phases:
                left[node_id, p] -= value
    return left


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_no_phase_of_any_node_is_overloaded(snapshot: tuple[list[Node], list[Demand]]) -> None:
    """Reserved load plus every grant stays under each node phase's limit (unless the fixed
    draws alone overload it, which the allocator cannot change)."""
    nodes, demands = snapshot
    grants = allocate(nodes, demands)
    controlled_only = [replace(d, fixed_da=None) for d in demands if d.fixed_da is None]
    fixed = [d for d in demands if d.fixed_da is not None]
    over_before = {(v.node_id, v.phase) for v in violations(nodes, fixed, {})}
    found = {(v.node_id, v.phase) for v in violations(nodes, controlled_only + fixed, grants)}
    assert found <= over_before


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_zero_or_at_least_the_minimum_on_the_step(
    snapshot: tuple[list[Node], list[Demand]],
) -> None:
    """Each controlled session gets 0 or between its minimum and maximum, on its step."""
    nodes, demands = snapshot
    grants = allocate(nodes, demands)
    for demand in demands:
        value = grants[demand.key].limit_da
        if demand.fixed_da is not None:
            assert value == demand.fixed_da
            continue
        assert value == 0 or demand.min_da <= value <= demand.max_da
        assert value % demand.step_da == 0


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_deterministic_and_independent_of_input_order(
    snapshot: tuple[list[Node], list[Demand]],
) -> None:
    """The same snapshot gives the same grants, whatever order the sessions come in."""
    nodes, demands = snapshot
    assert allocate(nodes, demands) == allocate(list(reversed(nodes)), list(reversed(demands)))


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_priority_respected(snapshot: tuple[list[Node], list[Demand]]) -> None:
    """Of two sessions with the same place, phases and bounds, the higher priority one never
    gets less."""
    nodes, demands = snapshot
    grants = allocate(nodes, demands)
    controlled = [d for d in demands if d.fixed_da is None]
    for a in controlled:
        for b in controlled:
            twins = (a.node_id, a.phases, a.min_da, a.max_da, a.step_da) == (
                b.node_id,
                b.phases,
                b.min_da,
                b.max_da,
                b.step_da,
            )
            if twins and a.priority > b.priority:
                assert grants[a.key].limit_da >= grants[b.key].limit_da


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_max_min_fair(snapshot: tuple[list[Node], list[Demand]]) -> None:
    """A session below its cap has a full node phase on its path (less than one step left per
    session sharing it) where no session of its priority got more than it, unless that one
    only holds its own minimum."""
    nodes, demands = snapshot
    demands = [replace(d, step_da=1) for d in demands]
    grants = allocate(nodes, demands)
    left = _remaining(nodes, demands, grants)
    controlled = [d for d in demands if d.fixed_da is None]
    for s in controlled:
        value = grants[s.key].limit_da
        if value == 0 or value >= s.max_da:
            continue
        path = [(n, p) for n in _ancestors(nodes, s.node_id) for p in s.phases]
        bottlenecks = []
        for where in path:
            sharing = [
                d
                for d in controlled
                if grants[d.key].limit_da > 0
                and where[0] in _ancestors(nodes, d.node_id)
                and where[1] in d.phases
            ]
            if left[where] < len(sharing) and all(
                grants[d.key].limit_da <= value
                or d.priority > s.priority
                or grants[d.key].limit_da == d.min_da
                for d in sharing
            ):
                bottlenecks.append(where)
        assert bottlenecks, (s, grants)


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.integers(min_value=1, max_value=400))
def test_raising_the_root_limit_lowers_no_one(
    snapshot: tuple[list[Node], list[Demand]], more: int
) -> None:
    """With the same sessions admitted, a higher root limit never lowers a grant."""
    nodes, demands = snapshot
    demands = [replace(d, step_da=1) for d in demands]
    root = nodes[0]
    bigger = [replace(root, limit=tuple(x + more for x in root.limit)), *nodes[1:]]
    before, after = allocate(nodes, demands), allocate(bigger, demands)
    admitted = {k for k, g in before.items() if g.reason is not Reason.QUEUED}
    if admitted != {k for k, g in after.items() if g.reason is not Reason.QUEUED}:
        return
    for key in admitted:
        assert after[key].limit_da >= before[key].limit_da
