"""Golden cases of the circuit allocator, table-driven."""

from __future__ import annotations

import pytest

from csms.core.allocator import Demand, Node, Reason, TreeError, allocate, violations

THREE = (0, 1, 2)


def d(name: str, node: str = "site", phases: tuple[int, ...] = THREE, **kw: int) -> Demand:
    bounds = {"min_da": 60, "max_da": 320, **kw}
    return Demand(key=(name, 1), node_id=node, phases=phases, **bounds)  # type: ignore[arg-type]


CASES = [
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d("a"), d("b")],
        {"a": 160, "b": 160},
        id="two cars share 32 A equally",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d("a", max_da=100), d("b"), d("c")],
        {"a": 100, "b": 110, "c": 110},
        id="a capped car leaves its share to the others",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d(f"c{i}", order=i) for i in range(6)],
        {"c0": 64, "c1": 64, "c2": 64, "c3": 64, "c4": 64, "c5": 0},
        id="the sixth car does not fit its 6 A minimum and is queued, never 5.3 A",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d(f"c{i}", order=i, priority=1 if i == 5 else 0) for i in range(6)],
        {"c0": 60, "c1": 60, "c2": 60, "c3": 60, "c4": 0, "c5": 80},
        id="priority takes the minimum first",
    ),
    pytest.param(
        # A single-phase car on a rotated station (charger L1 on grid L2) under a fuse that
        # only feeds grid L2: it charges at the fuse's 16 A.
        [Node("site", None, (0, 160, 0))],
        [d("rotated", phases=(1,))],
        {"rotated": 160},
        id="single-phase car on a rotated station under a single-phase fuse",
    ),
    pytest.param(
        [Node("site", None, (0, 160, 0))],
        [d("straight", phases=(0,)), d("three")],
        {"straight": 0, "three": 0},
        id="cars on phases the fuse does not feed get nothing",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d("l1a", phases=(0,)), d("l1b", phases=(0,)), d("three")],
        {"l1a": 106, "l1b": 106, "three": 106},
        id="per phase: single-phase cars on L1 share it with the three-phase car",
    ),
    pytest.param(
        [
            Node("site", None, (500, 500, 500)),
            Node("feeder", "site", (250, 250, 250)),
            Node("board", "feeder", (130, 130, 130)),
        ],
        [d("b1", "board"), d("b2", "board"), d("f1", "feeder"), d("s1"), d("s2")],
        {"b1": 65, "b2": 65, "f1": 120, "s1": 125, "s2": 125},
        id="three levels: each node caps its subtree, the rest goes up the tree",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320), reserved=(100, 100, 100))],
        [d("a"), d("b", fixed_da=100)],
        {"a": 120, "b": 100},
        id="base load and an uncontrollable member come off first",
    ),
    pytest.param(
        [Node("site", None, (320, 320, 320))],
        [d("whole", step_da=10), d("tenth")],
        {"whole": 160, "tenth": 160},
        id="amps-only members round down to whole amps",
    ),
    pytest.param(
        [Node("site", None, (325, 325, 325))],
        [d("whole", step_da=10), d("tenth")],
        {"whole": 160, "tenth": 162},
        id="rounding is down only",
    ),
]


@pytest.mark.parametrize(("nodes", "demands", "expected"), CASES)
def test_golden(nodes: list[Node], demands: list[Demand], expected: dict[str, int]) -> None:
    """The allocator gives the expected limit per connector and never overloads."""
    grants = allocate(nodes, demands)
    assert {key[0]: grant.limit_da for key, grant in grants.items()} == expected
    assert violations(nodes, demands, grants) == []


def test_reasons_name_the_limiting_node() -> None:
    """The reason names the node phase that stopped a session, or its cap, or the queue."""
    nodes = [Node("site", None, (400, 400, 400)), Node("board", "site", (130, 130, 130))]
    grants = allocate(
        nodes, [d("b1", "board"), d("b2", "board"), d("b3", "board"), d("s", max_da=100)]
    )
    assert grants["s", 1].reason is Reason.CAP
    assert (grants["b1", 1].reason, grants["b1", 1].node_id) == (Reason.CIRCUIT, "board")
    assert (grants["b3", 1].reason, grants["b3", 1].node_id) == (Reason.QUEUED, "board")


@pytest.mark.parametrize(
    "nodes",
    [
        [Node("a", "b", (1, 1, 1)), Node("b", "a", (1, 1, 1))],
        [Node("a", "nowhere", (1, 1, 1))],
    ],
    ids=["cycle", "unknown parent"],
)
def test_not_a_tree(nodes: list[Node]) -> None:
    """A cycle or an unknown parent is refused."""
    with pytest.raises(TreeError):
        allocate(nodes, [])


def test_violations_found() -> None:
    """The invariant check reports a node phase whose grants exceed its limit."""
    nodes = [Node("site", None, (130, 130, 130))]
    demands = [d("a"), d("b")]
    grants = allocate(nodes, demands)
    bad = {**grants, ("a", 1): grants["a", 1].__class__(90, Reason.CIRCUIT)}
    assert {(v.node_id, v.phase) for v in violations(nodes, demands, bad)} == {
        ("site", 0),
        ("site", 1),
        ("site", 2),
    }
