"""A subscription that keeps failing: `webhook.failing` on MQTT and to other subscriptions,
recovery; and replays from the delivery log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.strict_charger import strict_charger
from tests.support import MS, mqtt_of, running_csms, subscribed
from tests.webhooks.helpers import attempts_logged, caught_up, subscribe, webhook_settings
from tests.webhooks.receiver import Receiver, serving


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as running:
        yield running


@pytest.mark.postgres
async def test_after_the_last_retry_the_subscription_is_failing_and_says_so(
    database_url: str, receiver: Receiver
) -> None:
    """When the schedule's last retry fails the subscription is marked failing and
    `webhook.failing` goes out on MQTT (and to subscriptions that want it); the delivery
    is still tried, and once it succeeds the subscription is active again."""
    settings = webhook_settings(database_url, retry_schedule=f"{50 * MS}, {50 * MS}")
    receiver.answer("/fail", 500, 500, 500)
    async with running_csms(settings) as csms, csms.api() as api:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            monitor = await subscribe(
                api, "monitor", f"{receiver.url}/monitor", event_types=["webhook.*"]
            )
            await subscribe(
                api, "fail", f"{receiver.url}/fail", event_types=["chargepoint.connected"]
            )
            async with strict_charger(f"{csms.ocpp_url}/CP-F"):
                pass
            (failing,) = await events.until(1, of_type="webhook.failing")
            (told,) = await receiver.until(1, path="/monitor")
            delivered = await receiver.until(4, path="/fail")
            await caught_up(csms, "fail")
            after = (await api.get("/webhooks/fail")).json()
    assert failing["source"] == "/webhooks/fail"
    assert failing["data"]["webhookId"] == "fail"
    assert failing["data"]["eventId"] == delivered[0].webhook_id
    assert (failing["data"]["attempts"], failing["data"]["statusCode"]) == (3, 500)
    assert told.verified(monitor) == failing
    assert {d.webhook_id for d in delivered} == {delivered[0].webhook_id}
    assert (after["status"], after["statusReason"], after["failingSince"]) == ("active", None, None)


async def test_a_delivery_or_a_time_range_can_be_replayed(
    database_url: str, receiver: Receiver
) -> None:
    """Replaying a logged delivery sends its event again with the same webhook-id; a time
    range sends what the subscription wants of the events recorded in it."""
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with running_csms(webhook_settings(database_url)) as csms, csms.api() as api:
        secret = await subscribe(
            api, "again", f"{receiver.url}/again", event_types=["chargepoint.booted"]
        )
        async with strict_charger(f"{csms.ocpp_url}/CP-RP"):
            pass
        (first,) = await receiver.until(1, path="/again")
        await caught_up(csms, "again")
        (logged,) = (await api.get("/webhooks/again/deliveries")).json()["items"]

        one = await api.post("/webhooks/again/replay", json={"deliveryId": logged["id"]})
        assert one.status_code == 202, one.text
        await receiver.until(2, path="/again")
        until = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        ranged = await api.post(
            "/webhooks/again/replay", json={"from": started.isoformat(), "to": until}
        )
        assert ranged.status_code == 202, ranged.text
        assert ranged.json()["events"] >= 5  # connected, network, booted, disconnected, ...
        got = await receiver.until(3, path="/again")
        missing = await api.post("/webhooks/again/replay", json={"deliveryId": 999_999})
        bad = await api.post("/webhooks/again/replay", json={"deliveryId": 1, "from": until})
        await attempts_logged(csms, "again", 3)  # a replay's attempt is logged after it
        log = (await api.get("/webhooks/again/deliveries")).json()["items"]
    assert [d.webhook_id for d in got] == [first.webhook_id] * 3
    assert all(d.verified(secret)["type"] == "chargepoint.booted" for d in got)
    assert missing.status_code == 404
    assert bad.status_code == 422
    assert [item["replay"] for item in reversed(log)] == [False, True, True]
