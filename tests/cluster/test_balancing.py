"""The balancer runs on the leader and hears sessions on every node, not only the events
of the partitions the leader publishes (docs/deployment.md, "The balancer in cluster mode")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from csms.core.cluster import slot_of
from csms.flows.balancing import FOLLOWED_EVENTS
from simulators import Charger
from simulators.model import EvSpec, SessionState
from tests.cluster.nodes import Cluster, Node, node_env, running_cluster
from tests.support import MS

WAIT = 20_000 * MS
CAR = EvSpec(capacity_wh=200_000.0, max_power_w=22_080.0, soc_start=0.1)
# The safety tick and the safe default's retry are an hour: only an event can bring a pass
# within the test.
BALANCING = {
    "CSMS_BALANCING__ENABLED": "true",
    "CSMS_BALANCING__TICK": "3600",
    "CSMS_BALANCING__COALESCE": "0.05",
    "CSMS_BALANCING__INCREASE_HOLD": "0.001",
    "CSMS_BALANCING__RESUME_HOLD": "0.001",
    "CSMS_BALANCING__DEFAULT_RETRY": "3600",
}


@pytest.fixture
async def balancing_cluster(cluster_db: str) -> AsyncIterator[Cluster]:
    async with running_cluster(cluster_db, env=BALANCING) as cluster:
        yield cluster


async def test_a_session_on_another_nodes_partition_wakes_the_leaders_balancer(
    balancing_cluster: Cluster,
) -> None:
    """A car starting on a charger held by another node, whose events another node
    publishes, gets its safe default and its share from the leader's balancer within the
    coalescing time, not at the next tick."""
    cluster = balancing_cluster
    view = await cluster.settled()
    leader = next(node for node in cluster.nodes if node.node_id == view["leader"])
    other = next(node for node in cluster.nodes if node is not leader)
    holders = {p["partition"]: p["nodeId"] for p in view["partitions"]}
    count = int(view["partitionCount"])
    identity = next(
        f"LBC-{n}" for n in range(1000) if holders[slot_of(f"LBC-{n}") % count] != leader.node_id
    )
    charger = Charger(url=other.ocpp_url, identity=identity, connectors=1)
    await charger.connect(timeout=WAIT)
    try:
        assert (await charger.boot(timeout=WAIT))["status"] == "Accepted"
        await charger.status(0, "Available")
        await charger.status(1, "Available")
        async with leader.api() as api:
            tag = await api.put("/id-tags/TAG-1", json={"status": "Accepted"})
            assert tag.status_code < 300, tag.text
            circuit = {
                "name": "site",
                "phaseLimitsA": [32.0] * 3,
                "members": [{"chargePointId": identity}],
            }
            created = await api.put("/circuits/site", json=circuit)
            assert created.status_code == 201, created.text
        # The edit's pass sends the safe default; after it the balancer has nothing to do.
        await charger.wait_for(lambda: len(charger.core.profiles) >= 1, timeout=WAIT)
        assert charger.plug_in(1, "TAG-1", ev=CAR, dwell=3600)

        def charging() -> bool:
            session = charger.core.connectors[1].session
            return session is not None and session.state is SessionState.CHARGING

        await charger.wait_for(charging, timeout=WAIT)
        body: dict[str, object] = {}
        try:
            async with leader.api() as api, asyncio.timeout(WAIT):
                while True:
                    body = (await api.get("/circuits/site/allocation")).json()
                    rows = body["connectors"]
                    assert isinstance(rows, list)
                    if any(r["chargePointId"] == identity and r["limitA"] > 0 for r in rows):
                        break
                    await asyncio.sleep(100 * MS)
        except TimeoutError:
            raise AssertionError(f"no share for {identity}: {body}") from None
        assert leader.logged("leader_work_started")
    finally:
        await charger.close()


def _subscribed_to(node: Node, kind: str) -> bool:
    return any(b'"mqtt_subscribed"' in line and f"/{kind}".encode() in line for line in node.log)


async def test_the_leader_follows_meter_values_only_while_another_node_publishes(
    cluster_db: str,
) -> None:
    """Alone, the leader publishes every partition and hears all meter values from its own
    relay: no subscription to them (each would cost a PUBACK and be dropped). Once a
    second node publishes some partitions, the leader subscribes."""
    async with running_cluster(cluster_db, size=1, env=BALANCING) as cluster:
        (leader,) = cluster.nodes
        async with asyncio.timeout(WAIT):
            # The followed types are subscribed one after the other, meter values last.
            while True:
                if all(_subscribed_to(leader, kind) for kind in FOLLOWED_EVENTS[:-1]):
                    break
                await asyncio.sleep(100 * MS)
        assert FOLLOWED_EVENTS[-1] == "meter.values"
        second = Node(
            "n2",
            node_env("n2", database_url=cluster_db, prefix=cluster.prefix) | BALANCING,
        )
        cluster.nodes.append(second)
        assert not _subscribed_to(leader, "meter.values")
        await second.start()
        async with asyncio.timeout(WAIT):
            while True:
                if _subscribed_to(leader, "meter.values"):
                    break
                await asyncio.sleep(100 * MS)
        view = await cluster.settled()
        assert view["leader"] == leader.node_id
