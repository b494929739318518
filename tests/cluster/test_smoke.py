"""Three nodes come up, share the partitions, and elect one leader."""

from __future__ import annotations

from tests.cluster.nodes import Cluster


async def test_three_nodes_share_the_partitions(three_nodes: Cluster) -> None:
    """GET /api/v1/cluster lists three live nodes; each partition has one holder."""
    view = await three_nodes.settled()
    assert sorted(n["nodeId"] for n in view["nodes"]) == ["n1", "n2", "n3"]
    assert all(n["alive"] for n in view["nodes"])
    assert sum(len(n["partitions"]) for n in view["nodes"]) == 4
    assert sum(1 for n in view["nodes"] if n["leader"]) == 1
