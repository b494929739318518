"""Estimated CDRs are priced: a force-stopped session gets the cost of its estimated energy,
and when the charger's own Stop follows, the credit CDR negates that priced estimate and
the replacement is priced with the charger's values; the wallet follows each CDR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.strict_charger import strict_charger
from tests.support import RunningCsms, mqtt_of, subscribed

pytestmark = pytest.mark.postgres

TAG = "EST-DRIVER"
LOCATION: dict[str, Any] = {
    "publish": True,
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "time_zone": "Europe/Brussels",
}
# 0.50 per kWh excl. VAT, 20% VAT: 0.60 per kWh incl.
ENERGY: dict[str, Any] = {
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.50, "vat": 20.0, "step_size": 1}]}
    ]
}


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def register(tx: int, wh: int, at: datetime) -> dict[str, Any]:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": z(at), "sampledValue": sampled}],
    }


def money(value: Any) -> Decimal:
    return Decimal(str(value))


async def test_forced_estimate_is_priced_and_its_credit_negates_it(csms: RunningCsms) -> None:
    """Force stop after 10 kWh: the estimated CDR costs 5.00 / 6.00 and the driver is
    charged 6.00; the charger's Stop at 16 kWh: the credit CDR is -5.00 / -6.00 and gives
    the 6.00 back, the replacement costs 8.00 / 9.60 and is charged: the balance ends at
    exactly the top-up minus 9.60."""
    now = datetime.now(UTC)
    began = now - timedelta(hours=1)
    start = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": z(began)}
    mqtt = mqtt_of(csms)
    async with csms.api() as api:
        user = (await api.post("/users", json={"name": "Driver"})).json()["userId"]
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted", "userId": user})
        await api.post(f"/users/{user}/balance", json={"amount": 50, "reference": "top-1"})
        await api.put("/tariffs/KWH", json=ENERGY)
        await api.put("/tariff-assignments/default", json={"tariffId": "KWH"})
        await api.put("/locations/LOC-E", json=LOCATION)
        await api.put("/charge-points/CP-EST", json={"locationId": "LOC-E"})
    async with (
        subscribed(mqtt.url, mqtt.topic_prefix) as events,
        strict_charger(f"{csms.ocpp_url}/CP-EST") as charger,
        csms.api() as api,
    ):
        tx = (await charger.call("StartTransaction", start))["transactionId"]
        await charger.call("MeterValues", register(tx, 10_000, began + timedelta(minutes=30)))
        forced = await api.post(f"/transactions/{tx}/stop", json={"force": True})
        (estimate,) = await events.until(1, of_type="cdr.created")
        after_estimate = (await api.get(f"/users/{user}/wallet")).json()["balance"]
        stop = {"transactionId": tx, "meterStop": 16_000, "timestamp": z(now)}
        await charger.call("StopTransaction", stop)
        cdrs = await events.until(3, of_type="cdr.created")
        final = (await api.get(f"/users/{user}/wallet")).json()["balance"]
        ledger = (await api.get(f"/users/{user}/ledger")).json()["items"]
        shown = (await api.get(f"/transactions/{tx}")).json()
    assert forced.status_code == 200
    first = estimate["data"]
    assert (first["estimated"], first["energyWh"], first["tariffId"]) == (True, 10_000, "KWH")
    assert (money(first["cost"]["exclVat"]), money(first["cost"]["inclVat"])) == (
        Decimal("5.00"),
        Decimal("6.00"),
    )
    assert first["ocpi"]["total_cost"] == {"excl_vat": 5.0, "incl_vat": 6.0}
    assert first["ocpi"]["tariffs"][0]["id"] == "KWH"
    assert money(after_estimate) == Decimal("44.00")
    credit, replacement = cdrs[1]["data"], cdrs[2]["data"]
    assert (credit["cdrId"], credit["credit"]) == (f"{tx}-C", True)
    assert credit["ocpi"]["total_cost"] == {"excl_vat": -5.0, "incl_vat": -6.0}
    assert (money(credit["cost"]["exclVat"]), money(credit["cost"]["inclVat"])) == (
        Decimal("-5.00"),
        Decimal("-6.00"),
    )
    assert (replacement["cdrId"], replacement["energyWh"]) == (f"{tx}-R", 16_000)
    assert replacement["ocpi"]["total_cost"] == {"excl_vat": 8.0, "incl_vat": 9.6}
    assert money(final) == Decimal("40.40")
    sessions = sorted(
        (e["reference"], money(e["amount"])) for e in ledger if e["kind"] == "session"
    )
    assert sessions == [
        (str(tx), Decimal("-6.00")),
        (f"{tx}-C", Decimal("6.00")),
        (f"{tx}-R", Decimal("-9.60")),
    ]
    assert money(shown["cost"]["inclVat"]) == Decimal("9.60")


async def test_an_implicitly_ended_session_is_priced_from_its_estimate(csms: RunningCsms) -> None:
    """The connector's next Start ends the open session implicitly: its estimated CDR costs
    its last reading's energy (4 kWh: 2.00 / 2.40), charged to the driver."""
    now = datetime.now(UTC)
    began = now - timedelta(hours=1)
    mqtt = mqtt_of(csms)
    async with csms.api() as api:
        user = (await api.post("/users", json={"name": "Driver"})).json()["userId"]
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted", "userId": user})
        await api.put("/tariffs/KWH", json=ENERGY)
        await api.put("/tariff-assignments/default", json={"tariffId": "KWH"})
    async with (
        subscribed(mqtt.url, mqtt.topic_prefix) as events,
        strict_charger(f"{csms.ocpp_url}/CP-IMPL") as charger,
        csms.api() as api,
    ):
        first = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": z(began)}
        tx = (await charger.call("StartTransaction", first))["transactionId"]
        await charger.call("MeterValues", register(tx, 4_000, began + timedelta(minutes=20)))
        second = {**first, "meterStart": 4_000, "timestamp": z(now)}
        await charger.call("StartTransaction", second)
        (estimate,) = await events.until(1, of_type="cdr.created")
        ledger = (await api.get(f"/users/{user}/ledger")).json()["items"]
    data = estimate["data"]
    assert (data["transactionId"], data["reason"], data["estimated"]) == (
        tx,
        "implicitly_ended",
        True,
    )
    assert (money(data["cost"]["exclVat"]), money(data["cost"]["inclVat"])) == (
        Decimal("2.00"),
        Decimal("2.40"),
    )
    assert [(e["reference"], money(e["amount"])) for e in ledger if e["kind"] == "session"] == [
        (str(tx), Decimal("-2.40"))
    ]
