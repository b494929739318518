"""Webhook deliveries end to end: a real csms, real charger frames, a real HTTP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.sessions import RFID, START, STOP, meter
from tests.strict_charger import EXAMPLES, strict_charger
from tests.support import MS, RunningCsms, mqtt_of, running_csms, subscribed
from tests.webhooks.helpers import caught_up, subscribe, until_status, webhook_settings
from tests.webhooks.receiver import HANG, Receiver, serving

LOCATION = {
    "publish": True,
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "time_zone": "Europe/Brussels",
}
PREPARING = {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
SECURITY_EVENT = {"type": "StartupOfTheDevice", "timestamp": "2026-03-01T12:00:00Z"}


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms whose webhooks may call loopback receivers, with quick retries."""
    async with running_csms(webhook_settings(database_url)) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as running:
        yield running


@pytest.mark.postgres
async def test_every_event_type_is_delivered_signed_and_as_on_mqtt(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """Each event type reaches a '*' subscription, verified by the reference library, with
    the same bytes and per-charger order as on MQTT, and `webhook-id` = the event id."""
    mqtt = mqtt_of(hooks)
    async with hooks.api() as api, subscribed(mqtt.url, mqtt.topic_prefix) as events:
        secret = await subscribe(api, "all", f"{receiver.url}/all", event_types=["*"])
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        await api.put("/locations/LOC-1", json=LOCATION)
        async with strict_charger(f"{hooks.ocpp_url}/CP-ALL") as cp:
            await cp.call("StatusNotification", PREPARING)
            await cp.call("Authorize", {"idTag": RFID})
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:45:00Z"))
            await cp.call("StopTransaction", {**STOP, "transactionId": tx})
            await cp.call("SecurityEventNotification", SECURITY_EVENT)
            reserve = EXAMPLES["ReserveNow"][0]
            answer = await api.post("/charge-points/CP-ALL/commands/ReserveNow", json=reserve)
            assert answer.status_code == 200, answer.text
        on_mqtt = await events.until(17)
        await receiver.until(17, path="/all")
        await caught_up(hooks, "all")
    delivered = receiver.at("/all")
    types = {d.verified(secret)["type"] for d in delivered}
    assert types == {
        "location.updated",
        "chargepoint.connected",
        "chargepoint.network_status",
        "chargepoint.booted",
        "evse.status",
        "authorization",
        "session.started",
        "meter.values",
        "session.updated",
        "session.stopped",
        "cdr.created",
        "security.event",
        "command.completed",
        "reservation.status",
        "chargepoint.disconnected",
    }
    for delivery in delivered:
        assert delivery.webhook_id == delivery.event["id"]
        assert len(delivery.signatures) == 1
    bodies = {d.webhook_id: d.body for d in delivered}
    assert len(bodies) == len(delivered) == len(on_mqtt)
    for event in on_mqtt:  # the same CloudEvent as on MQTT
        assert orjson.loads(bodies[event["id"]]) == event
    cp_all = [e["id"] for e in on_mqtt if e["source"] == "/charge-points/CP-ALL"]
    assert [d.webhook_id for d in delivered if d.event["source"].endswith("/CP-ALL")] == cp_all


async def test_filters_pick_types_by_wildcard_and_chargers_by_id(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """'session.*' gets every charger's session events only; a charger list narrows a
    subscription to those chargers; events outside a filter are never sent."""
    async with hooks.api() as api:
        await subscribe(api, "sessions", f"{receiver.url}/sessions", event_types=["session.*"])
        await subscribe(
            api,
            "cp1-status",
            f"{receiver.url}/cp1-status",
            event_types=["evse.status"],
            chargePointIds=["CP-1"],
        )
        await subscribe(
            api, "cp2-all", f"{receiver.url}/cp2-all", event_types=["*"], chargePointIds=["CP-2"]
        )
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        for identity in ("CP-1", "CP-2"):
            async with strict_charger(f"{hooks.ocpp_url}/{identity}") as cp:
                await cp.call("StatusNotification", PREPARING)
                tx = (await cp.call("StartTransaction", START))["transactionId"]
                await cp.call("StopTransaction", {**STOP, "transactionId": tx})
        for webhook_id in ("sessions", "cp1-status", "cp2-all"):
            await caught_up(hooks, webhook_id)
    sessions = [(d.event["source"], d.event["type"]) for d in receiver.at("/sessions")]
    assert sorted(sessions) == sorted(
        (f"/charge-points/{cp}", kind)
        for cp in ("CP-1", "CP-2")
        for kind in ("session.started", "session.stopped")
    )
    status = [(d.event["source"], d.event["type"]) for d in receiver.at("/cp1-status")]
    assert status == [("/charge-points/CP-1", "evse.status")]
    cp2 = receiver.at("/cp2-all")
    assert {d.event["source"] for d in cp2} == {"/charge-points/CP-2"}
    assert len(cp2) == 10  # connected, network, booted, status, auth, started, stopped, cdr, ...


async def test_failed_attempts_are_retried_in_order_with_the_same_id(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """500s and a timeout are retried on the schedule; the charger's later events wait, so
    the receiver sees them in order; every attempt of one event has the same webhook-id,
    and the delivery log shows each attempt."""
    receiver.answer("/r", 500, HANG, 500)
    async with hooks.api() as api:
        secret = await subscribe(
            api, "r", f"{receiver.url}/r", event_types=["chargepoint.*"], chargePointIds=["CP-R"]
        )
        async with strict_charger(f"{hooks.ocpp_url}/CP-R"):
            pass
        # connected, network_status, booted, disconnected, network_status; the first 4 times
        await receiver.until(8, path="/r")
        await caught_up(hooks, "r")
        log = (await api.get("/webhooks/r/deliveries", params={"limit": 100})).json()
    got = receiver.at("/r")
    first = got[0].webhook_id
    assert [d.webhook_id for d in got[:4]] == [first] * 4
    distinct = list(dict.fromkeys(d.webhook_id for d in got))
    assert [receiver.at("/r")[0].verified(secret)["type"]] == ["chargepoint.connected"]
    assert [next(d for d in got if d.webhook_id == i).event["type"] for i in distinct] == [
        "chargepoint.connected",
        "chargepoint.network_status",
        "chargepoint.booted",
        "chargepoint.disconnected",
        "chargepoint.network_status",
    ]
    attempts = [
        (item["attempt"], item["statusCode"], item["error"])
        for item in reversed(log["items"])
        if item["eventId"] == first
    ]
    assert attempts == [(1, 500, None), (2, None, "timeout"), (3, 500, None), (4, 200, None)]
    assert log["total"] == 8
    assert all(item["latencyMs"] >= 0 for item in log["items"])
    assert log["items"][0]["responseBody"] == "answer 200"


async def test_410_gone_disables_the_subscription(hooks: RunningCsms, receiver: Receiver) -> None:
    """A 410 answer disables the subscription: GET says disabled, nothing more is sent."""
    receiver.answer("/gone", 410)
    async with hooks.api() as api:
        await subscribe(
            api, "gone", f"{receiver.url}/gone", event_types=["*"], chargePointIds=["CP-G"]
        )
        await subscribe(
            api, "control", f"{receiver.url}/control", event_types=["*"], chargePointIds=["CP-G"]
        )
        async with strict_charger(f"{hooks.ocpp_url}/CP-G"):
            pass
        await receiver.until(5, path="/control")
        await receiver.until(1, path="/gone")
        await until_status(hooks, "gone", "disabled")
        found = (await api.get("/webhooks/gone")).json()
        assert (found["enabled"], found["status"]) == (False, "disabled")
        assert "410" in found["statusReason"]
        async with strict_charger(f"{hooks.ocpp_url}/CP-G"):
            pass
        await receiver.until(10, path="/control")
    assert len(receiver.at("/gone")) == 1


async def test_a_dead_endpoint_delays_neither_other_subscriptions_nor_mqtt(
    database_url: str, receiver: Receiver
) -> None:
    """A receiver that never answers holds back only its own subscription: another
    subscription and the MQTT consumer get every event at once."""
    receiver.answer("/dead", *[HANG] * 50)
    settings = webhook_settings(database_url, read_timeout=60_000 * MS)
    async with running_csms(settings) as csms, csms.api() as api:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            await subscribe(api, "dead", f"{receiver.url}/dead", event_types=["*"])
            await subscribe(api, "alive", f"{receiver.url}/alive", event_types=["*"])
            for n in range(5):
                async with strict_charger(f"{csms.ocpp_url}/CP-D{n}"):
                    pass
            # 5 chargers x connected, network_status, booted, disconnected, network_status
            await events.until(25)
            alive = await receiver.until(25, path="/alive")
    assert len({d.webhook_id for d in alive}) == 25
    # The dead one has one delivery in flight per charger, all of them hanging.
    assert len(receiver.at("/dead")) <= 5


async def test_the_secret_is_shown_once(hooks: RunningCsms, receiver: Receiver) -> None:
    """Only the creating PUT's answer carries the secret; GET, lists and updates never."""
    async with hooks.api() as api:
        created = await api.put(
            "/webhooks/once", json={"url": f"{receiver.url}/once", "eventTypes": ["evse.*"]}
        )
        assert created.status_code == 201
        assert created.json()["secret"].startswith("whsec_")
        updated = await api.put(
            "/webhooks/once",
            json={"url": f"{receiver.url}/once", "eventTypes": ["*"], "description": "x"},
        )
        assert updated.status_code == 200
        shown = [updated.json(), (await api.get("/webhooks/once")).json()]
        shown += (await api.get("/webhooks")).json()["items"]
    for body in shown:
        assert "secret" not in body
        assert body["status"] == "active"
        assert body["enabled"] is True


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"url": "http://127.0.0.1/x", "eventTypes": ["sessions.*"]}, "matches no event type"),
        ({"url": "http://127.0.0.1/x", "eventTypes": []}, "eventTypes"),
        ({"url": "gopher://127.0.0.1/x", "eventTypes": ["*"]}, "only http and https"),
        ({"url": "http://127.0.0.1/x", "eventTypes": ["*"], "secret": "abc"}, "whsec_"),
    ],
)
async def test_bad_subscriptions_are_refused_with_the_reason(
    hooks: RunningCsms, body: dict[str, object], problem: str, tmp_path: Path
) -> None:
    """A pattern matching nothing, no types, a non-http URL or a malformed secret: 422."""
    async with hooks.api() as api:
        answer = await api.put("/webhooks/bad", json=body)
        assert answer.status_code == 422, answer.text
        assert problem in answer.json()["detail"]
        assert (await api.get("/webhooks/bad")).status_code == 404
