"""Prepaid drivers and the ledger under real sessions: refused at zero, stopped when the
balance runs out (by one session or by several together), and exact balances under
concurrent postings."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.support import RawCharger, RunningCsms, mqtt_of, subscribed

TAG = "04A2B3C4D5E6F7"
START = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": "2026-03-02T10:00:00Z"}
# 0.50 per kWh incl. 20% VAT: 0.60 per kWh for the driver.
ENERGY: dict[str, Any] = {
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.50, "vat": 20.0, "step_size": 1}]}
    ]
}


# The same energy price with a start fee of 1.00 + 20% VAT: a prepaid start needs over 1.20.
START_FEE: dict[str, Any] = {
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 1.00, "vat": 20.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.50, "vat": 20.0, "step_size": 1},
            ]
        }
    ]
}


def meter(tx: int, wh: int, at: str) -> dict[str, Any]:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": at, "sampledValue": sampled}],
    }


async def _prepaid_driver(api: Any, tariff: dict[str, Any] = ENERGY) -> str:
    user: str = (await api.post("/users", json={"name": "Prepaid"})).json()["userId"]
    await api.put(f"/id-tags/{TAG}", json={"status": "Accepted", "userId": user})
    await api.put(f"/users/{user}/wallet", json={"prepaid": True})
    await api.put("/tariffs/KWH", json=tariff)
    await api.put("/tariff-assignments/default", json={"tariffId": "KWH"})
    return user


async def _call_and_remote_stop(cp: RawCharger, payload: dict[str, Any]) -> dict[str, Any]:
    """Send MeterValues; answer the RemoteStopTransaction csms sends, whatever comes first."""
    await cp.send_raw(orjson.dumps([2, "mv-1", "MeterValues", payload]).decode())
    stop_request: dict[str, Any] | None = None
    answered = False
    while stop_request is None or not answered:
        frame = await cp.recv_frame()
        if frame[0] == 2 and frame[2] == "RemoteStopTransaction":
            stop_request = frame[3]
            await cp.send_raw(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
        elif frame[0] == 3 and frame[1] == "mv-1":
            answered = True
    return stop_request


@pytest.mark.postgres
async def test_prepaid_driver_refused_at_zero_and_stopped_when_the_balance_runs_out(
    csms: RunningCsms,
) -> None:
    """Zero balance: Authorize and StartTransaction Blocked; 3.00 lasts 5 kWh, then a stop."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        user = await _prepaid_driver(api)
        async with csms.charger("CP-PRE") as cp:
            refused = await cp.call("Authorize", {"idTag": TAG})
            blocked = await cp.call("StartTransaction", START)
            await api.post(f"/users/{user}/balance", json={"amount": 3, "reference": "p1"})
            accepted = await cp.call("Authorize", {"idTag": TAG})
            start = {**START, "timestamp": "2026-03-02T11:00:00Z"}
            started = await cp.call("StartTransaction", start)
            tx = started["transactionId"]
            await cp.call("MeterValues", meter(tx, 2000, "2026-03-02T11:10:00Z"))  # 1.20
            stop_request = await _call_and_remote_stop(
                cp,
                meter(tx, 5000, "2026-03-02T11:25:00Z"),  # 3.00: the balance is used up
            )
            await cp.call(
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": 5100,
                    "timestamp": "2026-03-02T11:26:00Z",
                    "reason": "Remote",
                },
            )
        updates = await events.until(3, of_type="session.updated")
        # The Blocked start's transaction, never stopped by the charger, is ended by the next
        # Start (docs/events.md, "Sessions that csms ends"): its estimated CDR comes first.
        blocked_end, cdr = await events.until(2, of_type="cdr.created")
        changes = await events.until(2, of_type="user.balance_changed")
        wallet = (await api.get(f"/users/{user}/wallet")).json()
    assert refused["idTagInfo"]["status"] == "Blocked"
    assert blocked["idTagInfo"]["status"] == "Blocked"
    assert accepted["idTagInfo"]["status"] == "Accepted"
    assert started["idTagInfo"]["status"] == "Accepted"
    assert stop_request == {"transactionId": tx}
    assert blocked_end["data"]["transactionId"] == blocked["transactionId"]
    assert (blocked_end["data"]["reason"], blocked_end["data"]["cost"]["exclVat"]) == (
        "implicitly_ended",
        0.0,
    )
    assert cdr["data"]["transactionId"] == tx
    reasons = [u["data"].get("reason") for u in updates]
    assert reasons.count("balance_exceeded") == 1
    stopped = next(u for u in updates if u["data"].get("reason") == "balance_exceeded")
    assert stopped["data"]["cost"]["inclVat"] == 3.0
    # 5.1 kWh at 0.60 incl. VAT; the ledger goes below zero by what the stop took.
    assert cdr["data"]["cost"] == {"currency": "EUR", "exclVat": 2.55, "inclVat": 3.06}
    assert changes[-1]["data"]["direction"] == "debit"
    assert changes[-1]["data"]["amount"] == 3.06
    assert wallet["balance"] == pytest.approx(-0.06)


@pytest.mark.postgres
async def test_a_prepaid_driver_on_two_chargers_is_stopped_when_their_sum_reaches_the_balance(
    csms: RunningCsms,
) -> None:
    """3.00 and two cars: 1.80 + 1.20 reaches it, though each alone is below; both stop."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        user = await _prepaid_driver(api)
        await api.post(f"/users/{user}/balance", json={"amount": 3, "reference": "p1"})
        async with csms.charger("CP-TWO-A") as a, csms.charger("CP-TWO-B") as b:
            tx_a = (await a.call("StartTransaction", START))["transactionId"]
            tx_b = (await b.call("StartTransaction", START))["transactionId"]
            await a.call("MeterValues", meter(tx_a, 2000, "2026-03-02T10:10:00Z"))  # 1.20
            await b.call("MeterValues", meter(tx_b, 2000, "2026-03-02T10:10:00Z"))  # 1.20
            # 1.80 + 1.20: together they reach 3.00, so A stops at this reading ...
            stop_a = await _call_and_remote_stop(a, meter(tx_a, 3000, "2026-03-02T10:20:00Z"))
            # ... and B at its next one, while A's stop is still on its way.
            stop_b = await _call_and_remote_stop(b, meter(tx_b, 2500, "2026-03-02T10:20:00Z"))
            for cp, tx, wh in ((a, tx_a, 3000), (b, tx_b, 2500)):
                stop = {"transactionId": tx, "meterStop": wh, "reason": "Remote"}
                await cp.call("StopTransaction", {**stop, "timestamp": "2026-03-02T10:21:00Z"})
        updates = await events.until(6, of_type="session.updated")
        await events.until(2, of_type="cdr.created")
        wallet = (await api.get(f"/users/{user}/wallet")).json()
    assert (stop_a, stop_b) == ({"transactionId": tx_a}, {"transactionId": tx_b})
    stopped = {
        u["data"]["transactionId"]: u["data"]["cost"]["inclVat"]
        for u in updates
        if u["data"].get("reason") == "balance_exceeded"
    }
    assert stopped == {tx_a: 1.8, tx_b: 1.5}
    assert len([u for u in updates if u["data"].get("reason") == "balance_exceeded"]) == 2
    # B's last interval (0.30) is what the driver spent beyond the balance.
    assert wallet["balance"] == pytest.approx(-0.30)


@pytest.mark.postgres
async def test_a_second_start_is_blocked_while_the_first_session_uses_the_balance(
    csms: RunningCsms,
) -> None:
    """3.00, start fee 1.20: A has used 1.80, so B's 1.20 available does not cover it."""
    async with csms.api() as api:
        user = await _prepaid_driver(api, START_FEE)
        await api.post(f"/users/{user}/balance", json={"amount": 3, "reference": "p1"})
        async with csms.charger("CP-FIRST") as a, csms.charger("CP-SECOND") as b:
            started_a = await a.call("StartTransaction", START)
            tx_a = started_a["transactionId"]
            await a.call("MeterValues", meter(tx_a, 1000, "2026-03-02T10:10:00Z"))  # 1.80
            authorized_b = await b.call("Authorize", {"idTag": TAG})
            started_b = await b.call("StartTransaction", START)
            await api.post(f"/users/{user}/balance", json={"amount": 1, "reference": "p2"})
            topped_up_b = await b.call("Authorize", {"idTag": TAG})
    assert started_a["idTagInfo"]["status"] == "Accepted"
    assert authorized_b["idTagInfo"]["status"] == "Blocked"
    assert started_b["idTagInfo"]["status"] == "Blocked"
    assert topped_up_b["idTagInfo"]["status"] == "Accepted"  # 2.20 available now


@pytest.mark.postgres
async def test_concurrent_top_ups_and_a_session_charge_leave_the_exact_balance(
    csms: RunningCsms,
) -> None:
    """20 top-ups of 1.10 racing a session's charge of 6.00: the balance is exactly 16.00."""
    async with csms.api() as api:
        user: str = (await api.post("/users", json={"name": "Busy"})).json()["userId"]
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted", "userId": user})
        await api.put("/tariffs/KWH", json=ENERGY)
        await api.put("/tariff-assignments/default", json={"tariffId": "KWH"})
        async with csms.charger("CP-RACE") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            stop = cp.call(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 10000, "timestamp": "2026-03-02T11:00:00Z"},
            )
            top_ups = [
                api.post(f"/users/{user}/balance", json={"amount": 1.1, "reference": f"r{i}"})
                for i in range(20)
            ]
            answers = await asyncio.gather(stop, *top_ups)
        assert all(a.status_code == 201 for a in answers[1:])
        ledger = (await api.get(f"/users/{user}/ledger")).json()
        wallet = (await api.get(f"/users/{user}/wallet")).json()
    assert ledger["total"] == 21
    assert wallet["balance"] == 16.0
    balances = sorted(a.json()["balance"] for a in answers[1:])
    assert len(set(balances)) == 20  # each posting saw its own, exact balance
