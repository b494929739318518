"""A node killed or drained under load: its chargers come back through the others, its
partitions are adopted, and every committed event reaches the broker exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.cluster.nodes import MQTT_URL, Cluster, Node
from tests.support import MS, RawCharger, Subscriber, subscribed

STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "Finishing")


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

    async def report(self, rounds: int, survivors: list[Node]) -> None:
        """Send status reports; a lost connection reconnects to a survivor and goes on."""
        for i in range(rounds):
            status = {"connectorId": 1, "errorCode": "NoError", "status": STATUSES[i % 5]}
            while True:
                try:
                    assert self.charger is not None
                    await self.charger.call("StatusNotification", status)
                    break
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


async def _exactly_once(cluster: Cluster, events: Subscriber) -> int:
    """Every event in the outbox arrived, and none twice; returns how many."""
    connection = await asyncpg.connect(_dsn(cluster.database_url))
    try:
        rows = await connection.fetch(
            "SELECT event_id, slot, relay_state, delivered_at, type FROM outbox_events"
        )
    finally:
        await connection.close()
    stored = {row["event_id"] for row in rows}
    try:
        async with asyncio.timeout(20_000 * MS):
            while not stored <= {e["id"] for e in events.events}:
                await asyncio.sleep(100 * MS)
    except TimeoutError:
        seen = {e["id"] for e in events.events}
        missing = [dict(row) for row in rows if row["event_id"] not in seen]
        raise AssertionError(
            f"{len(missing)} of {len(rows)} never arrived: {missing[:5]}"
        ) from None
    received = Counter(e["id"] for e in events.events)
    assert [event_id for event_id, n in received.items() if n > 1] == []
    assert set(received) == stored
    return len(stored)


async def test_sigkill_of_a_node_loses_and_duplicates_nothing(three_nodes: Cluster) -> None:
    """SIGKILL of n1 while 90 chargers report: n1's chargers reconnect to n2 and n3, n1's
    partitions are adopted after its lease, and each event id is published exactly once."""
    n1, n2, n3 = three_nodes.nodes
    async with subscribed(MQTT_URL, three_nodes.prefix) as events:
        fleet = await _fleet(three_nodes, 90)
        victim_held = len((await three_nodes.cluster_view())["nodes"][0]["partitions"])
        reports = [asyncio.create_task(c.report(12, [n2, n3])) for c in fleet]
        await asyncio.sleep(0)  # the reports are under way when the node dies
        await events.until(150, of_type="evse.status")
        await n1.kill()
        await asyncio.gather(*reports)
        view = await _drained(three_nodes, n2)
        total = await _exactly_once(three_nodes, events)
        for charger in fleet:
            await charger.close()
    assert victim_held >= 1
    assert {n["nodeId"] for n in view["nodes"] if n["alive"]} == {"n2", "n3"}
    assert sum(1 for c in fleet if c.close_codes) >= 25  # n1's third of the fleet moved
    assert total >= 90 * 12


async def test_sigterm_drains_a_node_and_hands_everything_over(three_nodes: Cluster) -> None:
    """SIGTERM on n2: its chargers are closed with 1001 and reconnect, its partitions go
    to n1 and n3 at once (no lease wait), it exits 0, and no event is lost or doubled."""
    n1, n2, n3 = three_nodes.nodes
    async with subscribed(MQTT_URL, three_nodes.prefix) as events:
        fleet = await _fleet(three_nodes, 60)
        reports = [asyncio.create_task(c.report(10, [n1, n3])) for c in fleet]
        await events.until(100, of_type="evse.status")
        code = await n2.stop()
        await asyncio.gather(*reports)
        view = await _drained(three_nodes, n1)
        await _exactly_once(three_nodes, events)
        for charger in fleet:
            await charger.close()
    assert code == 0
    assert "n2" not in {n["nodeId"] for n in view["nodes"]}
    moved = [c for c in fleet if c.close_codes]
    assert moved and all(codes == [1001] for codes in (c.close_codes for c in moved))
    assert n2.logged("cluster_left")
