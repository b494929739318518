"""A charger that moves between nodes: one transaction, every meter value, one CDR, and
the node it left changes nothing; commands reach it wherever it is."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import aiomqtt
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.cluster.nodes import MQTT_URL, Cluster, Node
from tests.sessions import START, STOP, meter
from tests.support import MS, RawCharger, Subscriber, new_identity, subscribed


async def _open(node: Node, identity: str) -> tuple[ClientConnection, RawCharger]:
    ws = await connect(
        f"{node.ocpp_url}/{identity}",
        subprotocols=["ocpp1.6"],
        open_timeout=10_000 * MS,  # type: ignore[list-item]
    )
    return ws, RawCharger(ws)


async def _answer_one_call(charger: RawCharger, answer: dict[str, Any]) -> list[Any]:
    """Read the CSMS's next CALL and answer it; returns the CALL."""
    frame = await charger.recv_frame()
    assert frame[0] == 2, frame
    await charger.send_raw(orjson.dumps([3, frame[1], answer]).decode())
    return frame


def _no_duplicates(events: Subscriber) -> None:
    ids = Counter(event["id"] for event in events.events)
    assert [i for i, n in ids.items() if n > 1] == []


async def test_a_charger_moving_mid_transaction_keeps_one_session(three_nodes: Cluster) -> None:
    """Start on n1, reconnect to n2 before n1 notices, stop there: one transaction with all
    four meter values and one CDR; n1's late disconnect is ignored; no event id twice."""
    n1, n2, n3 = three_nodes.nodes
    identity = new_identity("MOVE")
    async with subscribed(MQTT_URL, three_nodes.prefix) as events:
        ws1, on_n1 = await _open(n1, identity)
        await on_n1.boot()
        started = await on_n1.call("StartTransaction", START)
        tx = started["transactionId"]
        await on_n1.call("MeterValues", meter(tx, 2000, "2026-03-01T10:10:00Z"))
        await on_n1.call("MeterValues", meter(tx, 3000, "2026-03-01T10:20:00Z"))
        # The charger comes back through n2 while n1 still holds the old socket.
        ws2, on_n2 = await _open(n2, identity)
        await events.until(2, of_type="chargepoint.connected")
        await ws1.close()
        await on_n2.call("MeterValues", meter(tx, 5000, "2026-03-01T10:40:00Z"))
        await on_n2.call("MeterValues", meter(tx, 7000, "2026-03-01T11:00:00Z"))
        await on_n2.call("StopTransaction", {**STOP, "transactionId": tx})
        await events.until(1, of_type="cdr.created")
        async with n3.api() as api:
            transactions = (
                await api.get("/transactions", params={"chargePointId": identity})
            ).json()
            samples = (await api.get(f"/transactions/{tx}/meter-values")).json()
            charger = (await api.get(f"/charge-points/{identity}")).json()
        await ws2.close()
        await events.until(1, of_type="chargepoint.disconnected")
    items = transactions["items"] if isinstance(transactions, dict) else transactions
    assert [t["transactionId"] for t in items if t["chargePointId"] == identity] == [tx]
    sample_items = samples["items"] if isinstance(samples, dict) else samples
    energy = sorted({s["value"] for s in sample_items if "Energy" in s.get("measurand", "")})
    assert {"2000", "3000", "5000", "7000"} <= set(energy)
    assert len(events.of("cdr.created")) == 1
    # n1's close came after n2 took the charger: it was shown connected throughout.
    assert charger["connected"] is True
    kinds = [e["type"] for e in events.events if e["type"].startswith("chargepoint.")]
    assert kinds.count("chargepoint.disconnected") == 1
    assert kinds[-1] == "chargepoint.disconnected"
    assert n1.logged("stale_disconnect_ignored")
    _no_duplicates(events)


async def test_a_command_reaches_a_charger_held_by_another_node(three_nodes: Cluster) -> None:
    """An API command on n3 for a charger on n1 is forwarded: the charger's answer comes
    back as a 200, and a CALLERROR as a 502, as for a local charger."""
    n1, _, n3 = three_nodes.nodes
    identity = new_identity("FWD")
    ws, charger = await _open(n1, identity)
    try:
        await charger.boot()
        async with n3.api() as api:
            request = asyncio.create_task(
                api.post(
                    f"/charge-points/{identity}/commands/ChangeAvailability",
                    json={"connectorId": 0, "type": "Inoperative"},
                )
            )
            call = await _answer_one_call(charger, {"status": "Accepted"})
            answer = await request
            assert call[2] == "ChangeAvailability"
            assert answer.status_code == 200, answer.text
            assert answer.json()["response"] == {"status": "Accepted"}
            request = asyncio.create_task(
                api.post(f"/charge-points/{identity}/commands/ClearCache", json={})
            )
            frame = await charger.recv_frame()
            await charger.send_raw(
                orjson.dumps([4, frame[1], "NotSupported", "no cache", {}]).decode()
            )
            refused = await request
            assert refused.status_code == 502, refused.text
            assert refused.json()["errorCode"] == "NotSupported"
            unknown = await api.post("/charge-points/NOPE/commands/ClearCache", json={})
            assert unknown.status_code == 404
    finally:
        await ws.close()
    async with n3.api() as api:
        gone = await api.post(f"/charge-points/{identity}/commands/ClearCache", json={})
    assert gone.status_code == 409, gone.text


async def test_a_duplicated_start_on_two_nodes_makes_one_transaction(
    three_nodes: Cluster,
) -> None:
    """The same StartTransaction reaching two nodes at once yields one transaction id."""
    n1, n2, n3 = three_nodes.nodes
    identity = new_identity("DUP")
    ws1, a = await _open(n1, identity)
    ws2, b = await _open(n2, identity)
    try:
        await a.boot()
        await b.boot()
        first, second = await asyncio.gather(
            a.call("StartTransaction", START), b.call("StartTransaction", START)
        )
    finally:
        await ws1.close()
        await ws2.close()
    assert first["transactionId"] == second["transactionId"]
    async with n3.api() as api:
        listed = (await api.get("/transactions", params={"chargePointId": identity})).json()
    items = listed["items"] if isinstance(listed, dict) else listed
    assert len([t for t in items if t["chargePointId"] == identity]) == 1


async def test_an_mqtt_command_is_answered_once_by_the_cluster(three_nodes: Cluster) -> None:
    """A command over MQTT is taken by one node (shared subscription), forwarded to the
    charger's node, and answered once on the reply topic."""
    n1, _, _ = three_nodes.nodes
    identity = new_identity("MQTT")
    prefix = three_nodes.prefix
    async with asyncio.timeout(10_000 * MS):
        # Each node logs its command subscription once it is active.
        while True:
            if all(
                any(b"commands/+/+" in line and b"mqtt_subscribed" in line for line in node.log)
                for node in three_nodes.nodes
            ):
                break
            await asyncio.sleep(50 * MS)
    ws, charger = await _open(n1, identity)
    try:
        await charger.boot()
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"t-{identity}") as client:
            await client.subscribe(f"{prefix}/replies/#", qos=1)
            await client.publish(
                f"{prefix}/commands/{identity}/ClearCache",
                orjson.dumps({"correlationId": "c1", "payload": {}}),
                qos=1,
            )
            await _answer_one_call(charger, {"status": "Accepted"})
            replies = []
            async with asyncio.timeout(10_000 * MS):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    replies.append(orjson.loads(message.payload))
                    break
            # A second reply would come right behind the first: give it the time of one.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(500 * MS):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        replies.append(orjson.loads(message.payload))
    finally:
        await ws.close()
    assert len(replies) == 1
    assert replies[0]["status"] == 200
    assert replies[0]["response"] == {"status": "Accepted"}
