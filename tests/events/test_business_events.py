"""Business events end to end: real csms, real charger frames, a real MQTT broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import connect

from csms.config import MqttSettings
from csms.events.models_ocpi import EvseStatusUpdate, Session
from csms.events.models_oicp import ChargeDetailRecord, EvseStatusRecord
from csms.events.mqtt import start_embedded_broker
from tests.sessions import RFID, START, STOP, meter
from tests.strict_charger import strict_charger
from tests.support import (
    MOSQUITTO_UP,
    MS,
    RawCharger,
    RunningCsms,
    Subscriber,
    free_port,
    mqtt_of,
    running_csms,
    serve_process,
    settings_for,
    subscribed,
)


async def test_a_charging_session_publishes_every_event_in_order(csms: RunningCsms) -> None:
    """Connect, boot, status, authorize, start, meter, stop, leave: the events of docs/events.md."""
    mqtt = mqtt_of(csms)
    async with csms.api() as api:
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with csms.charger("CP-EV") as cp:
            await cp.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
            )
            await cp.call("Authorize", {"idTag": RFID})
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:45:00Z"))
            await cp.call("StopTransaction", {**STOP, "transactionId": tx})
        seen = await events.until(13)
    assert [e["type"] for e in seen] == [
        "chargepoint.connected",
        "chargepoint.network_status",
        "chargepoint.booted",
        "evse.status",
        "authorization",
        "authorization",
        "session.started",
        "meter.values",
        "session.updated",
        "session.stopped",
        "cdr.created",
        "chargepoint.disconnected",
        "chargepoint.network_status",
    ]
    for event in seen:
        assert event["specversion"] == "1.0"
        assert event["source"] == "/charge-points/CP-EV"
        assert event["datacontenttype"] == "application/json"
        assert event["time"].endswith("Z")
        UUID(event["id"])
    by_type = {e["type"]: e for e in seen}
    status = by_type["evse.status"]["data"]
    EvseStatusUpdate.model_validate_json(orjson.dumps(status["ocpi"]))
    EvseStatusRecord.model_validate_json(orjson.dumps(status["oicp"]))
    assert (status["ocpi"]["status"], status["oicp"]["EvseStatus"]) == ("CHARGING", "Occupied")
    started, updated, stopped = (
        by_type[t]["data"]["ocpi"]
        for t in ("session.started", "session.updated", "session.stopped")
    )
    for ocpi in (started, updated, stopped):
        Session.model_validate_json(orjson.dumps(ocpi))
    assert (started["status"], started["kwh"]) == ("ACTIVE", 0)
    assert (updated["status"], updated["kwh"]) == ("ACTIVE", 3)
    assert (stopped["status"], stopped["kwh"]) == ("COMPLETED", 7.5)
    assert by_type["session.started"]["time"] == "2026-03-01T10:00:00.000Z"  # the charger's time
    cdr = by_type["cdr.created"]["data"]
    record = ChargeDetailRecord.model_validate_json(orjson.dumps(cdr["oicp"]))
    assert cdr["transactionId"] == tx
    assert float(record.consumed_energy) == 7.5
    assert [a["data"]["source"] for a in events.of("authorization")] == [
        "Authorize",
        "StartTransaction",
    ]
    assert [s["data"]["status"] for s in events.of("chargepoint.network_status")] == [
        "available",
        "temporarily_unavailable",
    ]


async def test_state_events_are_retained(csms: RunningCsms) -> None:
    """A consumer that subscribes late still gets evse.status, booted and network_status."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as live, csms.charger("CP-RET") as cp:
        await cp.call(
            "StatusNotification", {"connectorId": 2, "errorCode": "NoError", "status": "Available"}
        )
        await live.until(1, of_type="evse.status")
        async with subscribed(mqtt.url, mqtt.topic_prefix) as late:
            got = await late.until(3)
    assert sorted(e["type"] for e in got) == [
        "chargepoint.booted",
        "chargepoint.network_status",
        "evse.status",
    ]
    assert all(late.retained[:3])


async def test_commands_and_reservations_publish_events(csms: RunningCsms) -> None:
    """command.completed with the response or the error; reservation.status as it changes."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with strict_charger(f"{csms.ocpp_url}/CP-CMD") as charger, csms.api() as api:
            await api.post("/charge-points/CP-CMD/commands/ClearCache", json={})
            charger.errors["Reset"] = ("NotSupported", "no", {})
            await api.post("/charge-points/CP-CMD/commands/Reset", json={"type": "Soft"})
            await api.post(
                "/charge-points/CP-CMD/reserve",
                json={"connectorId": 1, "idTag": "T", "expiryDate": "2099-01-01T00:00:00Z"},
            )
        completed = await events.until(3, of_type="command.completed")
        reserved = await events.until(1, of_type="reservation.status")
    assert completed[0]["data"] == {
        "action": "ClearCache",
        "request": {},
        "response": {"status": "Accepted"},
    }
    assert completed[1]["data"]["error"] == {"errorCode": "NotSupported", "errorDescription": "no"}
    assert reserved[0]["data"]["status"] == "active"


async def test_broker_outage_delays_events_but_loses_none(database_url: str) -> None:
    """Broker down for a whole transaction: answers at once; events arrive later, once, in order."""
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    prefix = f"outage-{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    settings = settings_for(
        database_url, mqtt=MqttSettings(url=url, topic_prefix=prefix, embedded=False)
    )
    try:
        async with running_csms(settings) as csms, csms.charger("CP-OUT") as cp:
            async with subscribed(url, prefix) as before:
                await before.until(1, of_type="chargepoint.booted")  # retained: it was delivered
            await broker.stop()
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            for minute, wh in ((15, 2000), (30, 3000), (45, 4000)):
                await cp.call("MeterValues", meter(tx, wh, f"2026-03-01T10:{minute}:00Z"))
            await cp.call("StopTransaction", {**STOP, "transactionId": tx})
            async with csms.api() as api:
                health = (await api.get("/health")).json()
            assert health["outboxBacklog"] >= 10
            assert health["outboxOldestAgeSeconds"] >= 0
            broker = await start_embedded_broker("127.0.0.1", port)
            async with subscribed(url, prefix) as after:
                await after.until(1, of_type="cdr.created")
                got = after.of(None)
    finally:
        await broker.stop()
    types = [e["type"] for e in got]
    assert types == [
        "authorization",
        "session.started",
        *["meter.values", "session.updated"] * 3,
        "session.stopped",
        "cdr.created",
    ]
    assert len({e["id"] for e in got}) == len(got)
    kwh = [e["data"]["ocpi"]["kwh"] for e in got if e["type"] == "session.updated"]
    assert kwh == [1, 2, 3]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
async def test_sigkill_mid_transaction_then_restart(tmp_path: Path) -> None:
    """csms killed mid-transaction and restarted: the Stop gives one CDR with the right energy."""
    port = free_port()
    broker = None if MOSQUITTO_UP else await start_embedded_broker("127.0.0.1", port)
    url = "mqtt://127.0.0.1:1883" if MOSQUITTO_UP else f"mqtt://127.0.0.1:{port}"
    prefix = f"kill-{uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CSMS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_API__PORT": "0",
        "CSMS_MQTT__URL": url,
        "CSMS_MQTT__TOPIC_PREFIX": prefix,
        "CSMS_MQTT__EMBEDDED": "false",
        "CSMS_LOG__FORMAT": "json",
    }
    ocpp_url = f"ws://127.0.0.1:{env['CSMS_OCPP__PORT']}/ocpp/CP-KILL"
    try:
        async with subscribed(url, prefix) as events:
            first = await serve_process(env)
            async with connect(
                ocpp_url,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                open_timeout=10_000 * MS,
            ) as ws:
                cp = RawCharger(ws)
                await cp.boot()
                tx = (await cp.call("StartTransaction", START))["transactionId"]
                first.send_signal(signal.SIGKILL)
                await first.wait()
            second = await serve_process(env)
            try:
                async with connect(
                    ocpp_url,
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    open_timeout=10_000 * MS,
                ) as ws:
                    cp = RawCharger(ws)
                    assert await cp.call("StopTransaction", {**STOP, "transactionId": tx}) == {}
                    assert await cp.call("StopTransaction", {**STOP, "transactionId": tx}) == {}
                stopped = await events.until(1, of_type="session.stopped")
                cdrs = await events.until(1, of_type="cdr.created")
            finally:
                second.send_signal(signal.SIGTERM)
                await second.wait()
        assert len(events.of("cdr.created")) == 1
        assert stopped[0]["data"]["ocpi"]["kwh"] == 7.5
        assert cdrs[0]["data"]["oicp"]["ConsumedEnergy"] == 7.5
    finally:
        if broker is not None:
            await broker.stop()


@asynccontextmanager
async def replies(url: str, prefix: str) -> AsyncIterator[tuple[aiomqtt.Client, Subscriber]]:
    """A client that publishes commands, and the replies it gets."""
    address = urlsplit(url)
    client = aiomqtt.Client(
        address.hostname or "127.0.0.1", address.port or 1883, identifier=f"r-{uuid4().hex[:8]}"
    )
    async with client:
        await client.subscribe(f"{prefix}/replies/#", qos=1)
        subscriber = Subscriber(client)
        try:
            yield client, subscriber
        finally:
            subscriber.close()


async def test_commands_over_mqtt_get_replies_with_http_statuses(csms: RunningCsms) -> None:
    """{prefix}/commands/{id}/{Action} runs the command; the reply carries the HTTP status."""
    mqtt = mqtt_of(csms)
    prefix = mqtt.topic_prefix
    async with (
        strict_charger(f"{csms.ocpp_url}/CP-MQ") as charger,
        replies(mqtt.url, prefix) as (
            client,
            got,
        ),
    ):
        requests = [
            ("CP-MQ", "Reset", {"correlationId": "c1", "payload": {"type": "Soft"}}),
            ("CP-MQ", "Reset", {"correlationId": "c2", "payload": {"type": "Sideways"}}),
            ("NOBODY", "Reset", {"correlationId": "c3", "payload": {"type": "Soft"}}),
            ("CP-MQ", "FooBar", {"correlationId": "c4", "payload": {}}),
            ("CP-MQ", "ClearCache", {"correlationId": "c5", "payload": "not an object"}),
        ]
        # The ingress subscribes on start; a command published before that would be lost.
        async with asyncio.timeout(10_000 * MS):
            await csms.app.ingress.subscribed.wait()
        for charge_point_id, action, body in requests:
            topic = f"{prefix}/commands/{charge_point_id}/{action}"
            await client.publish(topic, orjson.dumps(body), qos=1)
        answers = await got.until(len(requests))
    by_id = {a["correlationId"]: a for a in answers}
    assert by_id["c1"] == {
        "correlationId": "c1",
        "status": 200,
        "action": "Reset",
        "chargePointId": "CP-MQ",
        "response": {"status": "Accepted"},
    }
    assert [by_id[c]["status"] for c in ("c2", "c3", "c4", "c5")] == [422, 404, 422, 422]
    assert [action for action, _ in charger.received] == ["Reset"]


async def test_offline_chargers_go_unknown_then_long_term_unavailable(database_url: str) -> None:
    """Past the grace its EVSEs are UNKNOWN; later it is long_term_unavailable; back: available."""
    settings = settings_for(database_url, offline_grace=200 * MS, long_term_offline=500 * MS)
    async with running_csms(settings) as csms:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            async with csms.charger("CP-GONE") as cp:
                await cp.call(
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
                )
            statuses = await events.until(2, of_type="evse.status")
            network = await events.until(3, of_type="chargepoint.network_status")
            async with csms.charger("CP-GONE", boot=False):
                back = await events.until(4, of_type="chargepoint.network_status")
    assert [s["data"]["ocpi"]["status"] for s in statuses] == ["AVAILABLE", "UNKNOWN"]
    assert statuses[1]["data"]["oicp"]["EvseStatus"] == "Unknown"
    assert [n["data"]["status"] for n in back] == [
        "available",
        "temporarily_unavailable",
        "long_term_unavailable",
        "available",
    ]
    assert network == back[:3]
