"""The driver's wallet over the API: postings, vouchers, subscriptions and their events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import RunningCsms, mqtt_of, subscribed

FLAT_TARIFF: dict[str, Any] = {
    "elements": [{"price_components": [{"type": "TIME", "price": 1.0, "step_size": 60}]}]
}


async def _user(api: Any, name: str = "Ada") -> str:
    created = await api.post("/users", json={"name": name})
    user_id: str = created.json()["userId"]
    return user_id


@pytest.mark.postgres
async def test_top_up_fee_refund_and_the_ledger(csms: RunningCsms) -> None:
    """Postings change the balance by their amount; each emits user.balance_changed."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        user = await _user(api)
        top_up = await api.post(f"/users/{user}/balance", json={"amount": 20, "reference": "pay-1"})
        again = await api.post(f"/users/{user}/balance", json={"amount": 20, "reference": "pay-1"})
        fee = await api.post(f"/users/{user}/fees", json={"amount": 2.5, "reason": "card"})
        refund = await api.post(f"/users/{user}/refunds", json={"amount": 0.5, "reason": "sorry"})
        too_fine = await api.post(f"/users/{user}/balance", json={"amount": 0.001})
        negative = await api.post(f"/users/{user}/balance", json={"amount": -5})
        unknown = await api.post("/users/nobody/balance", json={"amount": 5})
        wallet = (await api.get(f"/users/{user}/wallet")).json()
        ledger = (await api.get(f"/users/{user}/ledger")).json()
        changes = await events.until(3, of_type="user.balance_changed")
    assert (top_up.status_code, again.status_code) == (201, 409)
    assert "body.reference" in again.json()["detail"]
    assert fee.json()["balance"] == 17.5
    assert refund.json()["balance"] == 18.0
    assert (too_fine.status_code, negative.status_code, unknown.status_code) == (422, 422, 404)
    assert wallet == {
        "userId": user,
        "currency": "EUR",
        "prepaid": False,
        "tariffGroupId": None,
        "balance": 18.0,
    }
    assert [(e["kind"], e["amount"]) for e in ledger["items"]] == [
        ("refund", 0.5),
        ("fee", -2.5),
        ("topup", 20.0),
    ]
    first = changes[0]
    assert first["data"] == {
        "userId": user,
        "direction": "credit",
        "amount": 20.0,
        "balance": 20.0,
        "currency": "EUR",
        "kind": "topup",
        "reason": "top-up",
        "reference": "pay-1",
    }
    assert first["subject"] == user
    assert [c["data"]["direction"] for c in changes] == ["credit", "debit", "credit"]


@pytest.mark.postgres
async def test_a_voucher_is_redeemed_once(csms: RunningCsms) -> None:
    """Two users redeeming one voucher at once: exactly one is credited, the other gets 409."""
    async with csms.api() as api:
        first, second = await _user(api, "A"), await _user(api, "B")
        voucher = await api.post(
            "/vouchers", json={"code": "WELCOME-1", "amount": 10, "description": "welcome"}
        )
        duplicate = await api.post("/vouchers", json={"code": "WELCOME-1", "amount": 10})
        answers = await asyncio.gather(
            api.post(f"/users/{first}/vouchers", json={"code": "WELCOME-1"}),
            api.post(f"/users/{second}/vouchers", json={"code": "WELCOME-1"}),
        )
        listed = (await api.get("/vouchers", params={"redeemed": True})).json()
        balances = [
            (await api.get(f"/users/{user}/wallet")).json()["balance"] for user in (first, second)
        ]
    assert (voucher.status_code, duplicate.status_code) == (201, 409)
    assert sorted(a.status_code for a in answers) == [201, 409]
    assert sorted(balances) == [0.0, 10.0]
    assert listed["total"] == 1
    assert listed["items"][0]["redeemedBy"] in (first, second)


@pytest.mark.postgres
async def test_subscription_charged_renewed_canceled_and_expired(csms: RunningCsms) -> None:
    """Subscribing charges the plan; renewal charges again; cancel and expiry are events."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        user = await _user(api)
        await api.put("/tariffs/SUB", json=FLAT_TARIFF)
        await api.put("/tariff-groups/commuter", json={"name": "Commuter", "tariffId": "SUB"})
        plan = await api.put(
            "/subscription-plans/monthly",
            json={"name": "Monthly", "price": 9.99, "periodDays": 30, "tariffGroupId": "commuter"},
        )
        await api.put(
            "/subscription-plans/once",
            json={
                "name": "Once",
                "price": 5,
                "periodDays": 1,
                "tariffGroupId": "commuter",
                "autoRenew": False,
            },
        )
        renewing = (
            await api.post(f"/users/{user}/subscriptions", json={"planId": "monthly"})
        ).json()
        single = (await api.post(f"/users/{user}/subscriptions", json={"planId": "once"})).json()
        # The renewal job, run as if 31 days had passed (its clock is our own seam).
        later = datetime.now(UTC) + timedelta(days=31)
        await csms.app.wallet.renew_due(now=later)
        canceled = await api.post(
            f"/users/{user}/subscriptions/{renewing['subscriptionId']}/cancel"
        )
        twice = await api.post(f"/users/{user}/subscriptions/{renewing['subscriptionId']}/cancel")
        wallet = (await api.get(f"/users/{user}/wallet")).json()
        changes = await events.until(5, of_type="user.subscription_changed")
    assert plan.status_code == 201
    assert (canceled.status_code, twice.status_code) == (200, 409)
    # 9.99 + 5.00 at the start, 9.99 again at the renewal; "once" expired without a charge.
    assert wallet["balance"] == pytest.approx(-24.98)
    statuses = [(c["data"]["subscriptionId"], c["data"]["status"]) for c in changes]
    assert statuses[:2] == [
        (renewing["subscriptionId"], "active"),
        (single["subscriptionId"], "active"),
    ]
    assert set(statuses[2:4]) == {
        (renewing["subscriptionId"], "active"),
        (single["subscriptionId"], "expired"),
    }
    assert statuses[4] == (renewing["subscriptionId"], "canceled")


async def test_wallet_settings_name_known_groups(csms: RunningCsms) -> None:
    """PUT /users/{id}/wallet makes a user prepaid and puts them in an existing group only."""
    async with csms.api() as api:
        user = await _user(api)
        unknown = await api.put(f"/users/{user}/wallet", json={"tariffGroupId": "none"})
        await api.put("/tariffs/G", json=FLAT_TARIFF)
        await api.put("/tariff-groups/g", json={"name": "G", "tariffId": "G"})
        set_both = await api.put(
            f"/users/{user}/wallet", json={"prepaid": True, "tariffGroupId": "g"}
        )
        keep_group = await api.put(f"/users/{user}/wallet", json={"prepaid": False})
    assert unknown.status_code == 422
    assert set_both.json()["prepaid"] is True
    assert keep_group.json() == {**set_both.json(), "prepaid": False}
