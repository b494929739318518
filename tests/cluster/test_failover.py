"""A node killed or drained under load: its chargers come back through the others, its
partitions are adopted, and every committed event reaches the broker exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.cluster.broker import roomy_mosquitto
from tests.cluster.nodes import Cluster, Node, running_cluster
from tests.support import MS, CallErrorReceived, RawCharger, Subscriber, subscribed

STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "Finishing")


@pytest.fixture
async def three_nodes(cluster_db: str) -> AsyncIterator[Cluster]:
    """conftest's three nodes, on a broker that queues without limit: these tests count
    every event at a subscriber of their own, which the shared broker's default queue
    (1,000) would cut short while a survivor publishes a lost node's backlog
    (tests/cluster/broker.py)."""
    async with (
        roomy_mosquitto() as mqtt_url,
        running_cluster(cluster_db, mqtt_url=mqtt_url) as cluster,
    ):
        yield cluster


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class FleetCharger:
    """A charger that reports statuses and, when its node goes, reconnects to another."""

    def __init__(self, identity: str, nodes: list[Node]) -> None:
        self.identity = identity
        self.nodes = nodes
        self.ws: ClientConnection | None = None
        self.charger: RawCharger | None = None
        self.close_codes: list[int | None] = []

    async def attach(self, node: Node) -> None:
        self.ws = await connect(
            f"{node.ocpp_url}/{self.identity}",
            subprotocols=["ocpp1.6"],
            open_timeout=20_000 * MS,  # type: ignore[list-item]
        )
        self.charger = RawCharger(self.ws)
        await self.charger.boot()

    async def report(
        self, rounds: int, survivors: list[Node], *, until: asyncio.Event | None = None
    ) -> None:
        """Send `rounds` status reports, and go on until `until` is set, then two more (so
        that every charger of a node that went meanwhile notices); a lost connection
        reconnects to a survivor and goes on."""
        sent = 0
        while sent < rounds or (until is not None and not until.is_set()):
            await self._report(sent, survivors)
            sent += 1
        if until is not None:
            for extra in range(2):
                await self._report(sent + extra, survivors)

    async def _report(self, i: int, survivors: list[Node]) -> None:
        status = {"connectorId": 1, "errorCode": "NoError", "status": STATUSES[i % 5]}
        while True:
            try:
                assert self.charger is not None
                await self.charger.call("StatusNotification", status)
                return
            except CallErrorReceived as error:
                # A node whose transaction was fenced (its lease ran out while it was
                # frozen) stored nothing and says so; a charger sends the report again.
                if error.code != "InternalError":
                    raise
            except (ConnectionClosed, OSError, TimeoutError):
                assert self.ws is not None
                self.close_codes.append(self.ws.close_code)
                await self.attach(survivors[hash(self.identity) % len(survivors)])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def _fleet(cluster: Cluster, count: int) -> list[FleetCharger]:
    nodes = cluster.running()
    fleet = [FleetCharger(f"FLEET-{i:04d}", nodes) for i in range(count)]
    await asyncio.gather(*(c.attach(nodes[i % len(nodes)]) for i, c in enumerate(fleet)))
    return fleet


async def _drained(cluster: Cluster, node: Node) -> dict[str, Any]:
    """Wait until the surviving nodes hold every partition and nothing waits to publish."""
    async with asyncio.timeout(60_000 * MS):
        while True:
            view = await cluster.cluster_view(node)
            alive = {n.node_id for n in cluster.running()}
            holders = {p["nodeId"] for p in view["partitions"]}
            if holders <= alive and view["relayLag"]["pendingEvents"] == 0:
                return view
            await asyncio.sleep(100 * MS)


async def _balanced(cluster: Cluster) -> dict[str, int]:
    """Wait until every partition is held and the nodes hold 2, 1, 1 of the 4 (every
    partition held is not enough: the first node takes them all, then gives some away);
    returns the partitions per node."""
    await cluster.settled()
    async with asyncio.timeout(30_000 * MS):
        while True:
            view = await cluster.cluster_view()
            held = {n["nodeId"]: len(n["partitions"]) for n in view["nodes"]}
            if sorted(held.values()) == [1, 1, 2] and len(view["partitions"]) == 4:
                return held
            await asyncio.sleep(100 * MS)


async def _adopted(cluster: Cluster, survivors: list[Node]) -> None:
    """Wait until the survivors hold every partition."""
    async with asyncio.timeout(30_000 * MS):
        while True:
            view = await cluster.cluster_view(survivors[0])
            if {p["nodeId"] for p in view["partitions"]} <= {n.node_id for n in survivors}:
                return
            await asyncio.sleep(100 * MS)


async def _stored(cluster: Cluster) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(_dsn(cluster.database_url))
    try:
        rows = await connection.fetch(
            "SELECT event_id, slot, relay_state, delivered_at, type FROM outbox_events"
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def _exactly_once(cluster: Cluster, events: Subscriber) -> int:
    """Every event in the outbox arrived, and none twice; returns how many."""
    rows = await _stored(cluster)
    try:
        # Every event under the prefix comes from the outbox: as many as stored means all
        # arrived, unless some came twice (checked below).
        await events.until(len(rows))
    except TimeoutError:
        seen = {e["id"] for e in events.events}
        missing = [row for row in rows if row["event_id"] not in seen]
        raise AssertionError(
            f"{len(missing)} of {len(rows)} never arrived: {missing[:5]}"
        ) from None
    received = Counter(e["id"] for e in events.events)
    assert [event_id for event_id, n in received.items() if n > 1] == []
    assert {row["event_id"] for row in rows} <= set(received)
    # Nothing arrived that csms did not write (read again: later events may have come).
    assert set(received) <= {row["event_id"] for row in await _stored(cluster)}
    return len(rows)


async def test_sigkill_of_a_node_loses_and_duplicates_nothing(three_nodes: Cluster) -> None:
    """SIGKILL of a node while 90 chargers report: its chargers reconnect to the others,
    its partitions are adopted after its lease, and each event id is published once."""
    held = await _balanced(three_nodes)
    victim = next(n for n in three_nodes.nodes if n.node_id == max(held, key=held.__getitem__))
    survivors = [n for n in three_nodes.nodes if n is not victim]
    async with subscribed(three_nodes.mqtt_url, three_nodes.prefix) as events:
        fleet = await _fleet(three_nodes, 90)
        went = asyncio.Event()
        # A group, so that a failing report stops the others before the nodes go (loose
        # tasks would go on dialling killed nodes and bury the failure under
        # ConnectionRefusedError).
        async with asyncio.TaskGroup() as reports:
            for charger in fleet:
                reports.create_task(charger.report(12, survivors, until=went))
            await events.until(150, of_type="evse.status")
            await victim.kill()
            went.set()
        after = await _drained(three_nodes, survivors[0])
        total = await _exactly_once(three_nodes, events)
        for charger in fleet:
            await charger.close()
    assert sorted(held.values()) == [1, 1, 2]
    assert {n["nodeId"] for n in after["nodes"] if n["alive"]} == {n.node_id for n in survivors}
    assert sum(1 for c in fleet if c.close_codes) == 30  # the victim's third of the fleet
    assert total >= 90 * 12


async def test_sigterm_drains_a_node_and_hands_everything_over(three_nodes: Cluster) -> None:
    """SIGTERM on n2: its chargers are closed with 1001 and reconnect, its partitions go
    to n1 and n3 at once (no lease wait), it exits 0, and no event is lost or doubled."""
    n1, n2, n3 = three_nodes.nodes
    async with subscribed(three_nodes.mqtt_url, three_nodes.prefix) as events:
        fleet = await _fleet(three_nodes, 60)
        went = asyncio.Event()
        async with asyncio.TaskGroup() as reports:
            for charger in fleet:
                reports.create_task(charger.report(10, [n1, n3], until=went))
            await events.until(100, of_type="evse.status")
            code = await n2.stop()
            went.set()
        view = await _drained(three_nodes, n1)
        await _exactly_once(three_nodes, events)
        for charger in fleet:
            await charger.close()
    assert code == 0
    assert "n2" not in {n["nodeId"] for n in view["nodes"]}
    moved = [c for c in fleet if c.close_codes]
    assert moved
    assert all(c.close_codes == [1001] for c in moved)
    assert n2.logged("cluster_left")


async def test_a_frozen_node_that_wakes_up_publishes_nothing_twice(three_nodes: Cluster) -> None:
    """SIGSTOP of a node past its lease (a zombie): its partitions are adopted; after
    SIGCONT its publishers find their lease gone (fenced) and stop; each id still once."""
    held = await _balanced(three_nodes)
    zombie = next(n for n in three_nodes.nodes if n.node_id == max(held, key=held.__getitem__))
    survivors = [n for n in three_nodes.nodes if n is not zombie]
    assert zombie.process is not None
    async with subscribed(three_nodes.mqtt_url, three_nodes.prefix) as events:
        fleet = await _fleet(three_nodes, 60)
        woke = asyncio.Event()
        async with asyncio.TaskGroup() as reports:
            for charger in fleet:
                reports.create_task(charger.report(10, survivors, until=woke))
            await events.until(100, of_type="evse.status")
            zombie.process.send_signal(signal.SIGSTOP)
            try:
                await _adopted(three_nodes, survivors)
            finally:
                zombie.process.send_signal(signal.SIGCONT)
            woke.set()
        await _drained(three_nodes, survivors[0])
        await _exactly_once(three_nodes, events)
        for charger in fleet:
            await charger.close()
    assert zombie.logged("partition_lost") or zombie.logged("partition_lease_lost")
