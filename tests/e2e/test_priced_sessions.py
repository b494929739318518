"""Sessions priced end to end: tariff resolved at the start, running cost, CDR with costs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from csms.config import BalancingSettings, OcpiSettings, Settings
from csms.events.models_ocpi import Cdr, Session
from tests.strict_charger import strict_charger
from tests.support import RunningCsms, mqtt_of, running_csms, settings_for, subscribed

TAG = "04A2B3C4D5E6F7"
# 16:30 in Berlin on 2 March 2026 (CET, UTC+1): the session crosses 17:00 local.
START = {"connectorId": 1, "idTag": TAG, "meterStart": 1000, "timestamp": "2026-03-02T15:30:00Z"}
BERLIN: dict[str, Any] = {
    "publish": True,
    "address": "Unter den Linden 1",
    "city": "Berlin",
    "country": "DEU",
    "coordinates": {"latitude": "52.517036", "longitude": "13.388860"},
    "time_zone": "Europe/Berlin",
}
DAY_AND_EVENING: dict[str, Any] = {
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.20, "vat": 20.0, "step_size": 1}],
            "restrictions": {"start_time": "06:00", "end_time": "17:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.40, "vat": 20.0, "step_size": 1}]},
    ],
}


def meter(tx: int, wh: int, at: str) -> dict[str, Any]:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    value = [{"timestamp": at, "sampledValue": sampled}]
    return {"connectorId": 1, "transactionId": tx, "meterValue": value}


def status(state: str, at: str) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": state, "timestamp": at}


@pytest.mark.postgres
async def test_time_of_day_tariff_gives_two_periods_and_the_right_total(
    csms: RunningCsms,
) -> None:
    """A session across 17:00 local: two priced periods, 3.60/4.32, in session and CDR events."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        await api.put("/locations/BER", json=BERLIN)
        await api.put("/charge-points/CP-TOD", json={"locationId": "BER"})
        await api.put("/tariffs/TOD", json=DAY_AND_EVENING)
        await api.put("/tariff-assignments/locations/BER", json={"tariffId": "TOD"})
        async with csms.charger("CP-TOD") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            # 4 kWh by 16:50, 4 more by 17:10 (2 of them after 17:00), 4 more by 17:30.
            await cp.call("MeterValues", meter(tx, 5000, "2026-03-02T15:50:00Z"))
            await cp.call("MeterValues", meter(tx, 9000, "2026-03-02T16:10:00Z"))
            # An edit after the start must not reprice the session.
            await api.put("/tariffs/TOD", json={**DAY_AND_EVENING, "min_price": {"excl_vat": 99}})
            await cp.call(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 13000, "timestamp": "2026-03-02T16:30:00Z"},
            )
        (cdr,) = await events.until(1, of_type="cdr.created")
        updates = await events.until(2, of_type="session.updated")
        transaction = (await api.get(f"/transactions/{tx}")).json()
    data = cdr["data"]
    assert data["tariffId"] == "TOD"
    assert data["cost"] == {"currency": "EUR", "exclVat": 3.6, "inclVat": 4.32}
    assert (data["chargePointId"], data["connectorId"], data["idTag"]) == ("CP-TOD", 1, TAG)
    assert (data["start"], data["stop"]) == ("2026-03-02T15:30:00.000Z", "2026-03-02T16:30:00.000Z")
    assert (data["energyWh"], data["durationS"], data["parkingS"]) == (12000, 3600, 0)
    ocpi = Cdr.model_validate_json(orjson.dumps(data["ocpi"]))
    assert [tariff.id for tariff in ocpi.tariffs or []] == ["TOD"]
    assert ocpi.tariffs is not None
    assert ocpi.tariffs[0].min_price is None  # the version the session started with
    periods = data["ocpi"]["charging_periods"]
    starts = [p["start_date_time"] for p in periods]
    assert starts == ["2026-03-02T15:30:00Z", "2026-03-02T16:00:00Z"]
    assert [p["tariff_id"] for p in periods] == ["TOD", "TOD"]
    assert [p["dimensions"][0] for p in periods] == [
        {"type": "ENERGY", "volume": 6.0},
        {"type": "ENERGY", "volume": 6.0},
    ]
    assert data["ocpi"]["total_cost"] == {"excl_vat": 3.6, "incl_vat": 4.32}
    assert data["ocpi"]["total_energy_cost"] == {"excl_vat": 3.6, "incl_vat": 4.32}
    # Running cost: 4 kWh at 0.20 by 16:50; then 6 at 0.20 and 2 at 0.40 by 17:10.
    assert [u["data"]["cost"]["exclVat"] for u in updates] == [0.8, 2.0]
    Session.model_validate_json(orjson.dumps(updates[-1]["data"]["ocpi"]))
    assert updates[-1]["data"]["ocpi"]["total_cost"] == {"excl_vat": 2.0, "incl_vat": 2.4}
    assert transaction["cost"] == {"currency": "EUR", "exclVat": 3.6, "inclVat": 4.32}
    assert transaction["tariffId"] == "TOD"


async def test_cdr_without_location_still_has_its_summary(csms: RunningCsms) -> None:
    """cdr.created with `ocpi` null (no Location) still carries the summary and the cost."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        flat = {"type": "FLAT", "price": 1.5, "vat": 20.0, "step_size": 1}
        await api.put("/tariffs/FLAT", json={"elements": [{"price_components": [flat]}]})
        await api.put("/tariff-assignments/default", json={"tariffId": "FLAT"})
        async with csms.charger("CP-NOLOC") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 1500, "timestamp": "2026-03-02T15:45:00Z"},
            )
        (cdr,) = await events.until(1, of_type="cdr.created")
    data = cdr["data"]
    assert data["ocpi"] is None
    assert data["tariffId"] == "FLAT"
    assert data["cost"] == {"currency": "EUR", "exclVat": 1.5, "inclVat": 1.8}
    assert (data["energyWh"], data["durationS"]) == (500, 900)


async def test_parking_time_from_connector_statuses(csms: RunningCsms) -> None:
    """SuspendedEV without energy, then Finishing, is parking: priced and in parkingS."""
    tariff = {
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.30, "step_size": 1},
                    {"type": "PARKING_TIME", "price": 6.00, "step_size": 300},
                ]
            }
        ],
    }
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        await api.put("/tariffs/PARK", json=tariff)
        await api.put("/tariff-assignments/evses/CP-PARK/1", json={"tariffId": "PARK"})
        async with csms.charger("CP-PARK") as cp:
            await cp.call("StatusNotification", status("Preparing", "2026-03-02T15:29:00Z"))
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("StatusNotification", status("Charging", "2026-03-02T15:30:00Z"))
            await cp.call("MeterValues", meter(tx, 11000, "2026-03-02T16:30:00Z"))
            await cp.call("StatusNotification", status("SuspendedEV", "2026-03-02T16:30:00Z"))
            await cp.call("StatusNotification", status("Finishing", "2026-03-02T16:40:00Z"))
            await cp.call(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 11000, "timestamp": "2026-03-02T16:52:00Z"},
            )
        (cdr,) = await events.until(1, of_type="cdr.created")
    data = cdr["data"]
    # 10 kWh * 0.30 + 22 min parked, billed as 25 min at 6.00/h = 3.00 + 2.50
    assert data["parkingS"] == 22 * 60
    assert data["cost"] == {"currency": "EUR", "exclVat": 5.5, "inclVat": None}


@pytest.mark.postgres
async def test_purchase_cost_and_margin_from_the_site_rate(csms: RunningCsms) -> None:
    """A site's time-of-use rate with an uploaded hour gives the CDR purchaseCost and margin."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        await api.put("/locations/BER", json=BERLIN)
        await api.put("/charge-points/CP-RATE", json={"locationId": "BER"})
        await api.put("/tariffs/TOD", json=DAY_AND_EVENING)
        await api.put("/tariff-assignments/default", json={"tariffId": "TOD"})
        rate = await api.put(
            "/electricity-rates/grid",
            json={
                "locationId": "BER",
                "timeOfUse": [{"startTime": "00:00", "endTime": "00:00", "price": 0.15}],
            },
        )
        # Day-ahead price for 16:00-17:00 local (15:00-16:00 UTC).
        upload = await api.put(
            "/electricity-rates/grid/prices",
            json={
                "prices": [
                    {"start": "2026-03-02T15:00:00Z", "end": "2026-03-02T16:00:00Z", "price": 0.05}
                ]
            },
        )
        async with csms.charger("CP-RATE") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call(
                "StopTransaction",
                {"transactionId": tx, "meterStop": 13000, "timestamp": "2026-03-02T16:30:00Z"},
            )
        (cdr,) = await events.until(1, of_type="cdr.created")
        transaction = (await api.get(f"/transactions/{tx}")).json()
        prices = (
            await api.get(
                "/electricity-rates/grid/prices",
                params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"},
            )
        ).json()
    assert (rate.status_code, rate.json()["timeZone"]) == (201, "Europe/Berlin")
    assert upload.json() == {"count": 1}
    assert prices["total"] == 1
    # 12 kWh over an hour: 6 kWh 16:30-17:00 at 0.05 and 6 after at 0.15 = 1.20 to buy;
    # sold 6 at 0.20 and 6 at 0.40 = 3.60 excl. VAT: a margin of 2.40.
    assert cdr["data"]["purchaseCost"] == 1.2
    assert cdr["data"]["margin"] == 2.4
    assert (transaction["purchaseCost"], transaction["margin"]) == (1.2, 2.4)


def every_day(price: float) -> list[dict[str, Any]]:
    return [{"startTime": "00:00", "endTime": "00:00", "price": price}]


@pytest.mark.postgres
async def test_a_circuit_rate_wins_over_the_site_rate(database_url: str) -> None:
    """Chargers at one site: those on a circuit (or below it) are bought at its rate, even
    when moved off it mid-session; the one on no circuit at the site's."""
    # Balancing off: the raw chargers here answer no SetChargingProfile; pricing needs none.
    settings = replace(settings_for(database_url), balancing=BalancingSettings(enabled=False))
    row = {"name": "Row", "phaseLimitsA": [32, 32, 32]}
    on_row = {**row, "members": [{"chargePointId": "CP-ROW", "connectorId": 1}]}
    # A sub-circuit with no rate of its own, the whole charger CP-SUB on it.
    sub = {**row, "parentId": "ROW", "members": [{"chargePointId": "CP-SUB"}]}
    async with running_csms(settings) as csms:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
            await api.put("/locations/BER", json=BERLIN)
            for charger in ("CP-ROW", "CP-SUB", "CP-WALL"):
                await api.put(f"/charge-points/{charger}", json={"locationId": "BER"})
            await api.put("/tariffs/TOD", json=DAY_AND_EVENING)
            await api.put("/tariff-assignments/default", json={"tariffId": "TOD"})
            assert (await api.put("/circuits/ROW", json=on_row)).status_code == 201
            assert (await api.put("/circuits/SUB", json=sub)).status_code == 201
            site = {"locationId": "BER", "timeOfUse": every_day(0.15)}
            circuit = {"circuitId": "ROW", "timeOfUse": every_day(0.05)}
            assert (await api.put("/electricity-rates/site", json=site)).status_code == 201
            assert (await api.put("/electricity-rates/row", json=circuit)).status_code == 201
            txs = {}
            for charger in ("CP-ROW", "CP-SUB", "CP-WALL"):
                async with csms.charger(charger) as cp:
                    tx = (await cp.call("StartTransaction", START))["transactionId"]
                    if charger == "CP-ROW":
                        # Moved off the circuit mid-session: bought where it started.
                        assert (await api.put("/circuits/ROW", json=row)).status_code == 200
                    stop = {"transactionId": tx, "meterStop": 13000}
                    await cp.call("StopTransaction", {**stop, "timestamp": "2026-03-02T16:30:00Z"})
                txs[charger] = tx
            cdrs = await events.until(3, of_type="cdr.created")
            api_view = {
                charger: (await api.get(f"/transactions/{tx}")).json()
                for charger, tx in txs.items()
            }
    summary = {cdr["data"]["chargePointId"]: cdr["data"] for cdr in cdrs}
    # Each sold 12 kWh for 3.60 excl. VAT (6 at 0.20 before 17:00 local, 6 at 0.40 after).
    # On the circuit: bought at 0.05 = 0.60, a margin of 3.00; at the site's 0.15: 1.80.
    expected = {"CP-ROW": (0.6, 3.0), "CP-SUB": (0.6, 3.0), "CP-WALL": (1.8, 1.8)}
    for charger, (purchase, margin) in expected.items():
        data, view = summary[charger], api_view[charger]
        assert data["cost"] == {"currency": "EUR", "exclVat": 3.6, "inclVat": 4.32}
        assert (data["purchaseCost"], data["margin"]) == (purchase, margin), charger
        assert (view["purchaseCost"], view["margin"]) == (purchase, margin), charger


def no_balancing(database_url: str, **ocpi: Any) -> Settings:
    # Balancing off: the raw chargers here answer no SetChargingProfile; pricing needs none.
    settings = settings_for(database_url, ocpi=OcpiSettings(**ocpi))
    return replace(settings, balancing=BalancingSettings(enabled=False))


@pytest.mark.postgres
async def test_a_session_without_a_tariff_is_bought_at_its_circuit_or_site_rate(
    database_url: str,
) -> None:
    """No tariff: nothing sold, but the energy was bought. The margin is minus the purchase
    cost, at the circuit the session started on (even when moved off it) or the site."""
    on_row = {"name": "Row", "phaseLimitsA": [32, 32, 32]}
    on_row["members"] = [{"chargePointId": "CP-ROW", "connectorId": 1}]
    async with running_csms(no_balancing(database_url)) as csms:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
            await api.put("/locations/BER", json=BERLIN)
            for charger in ("CP-ROW", "CP-WALL"):
                await api.put(f"/charge-points/{charger}", json={"locationId": "BER"})
            assert (await api.put("/circuits/ROW", json=on_row)).status_code == 201
            site = {"locationId": "BER", "timeOfUse": every_day(0.15)}
            circuit = {"circuitId": "ROW", "timeOfUse": every_day(0.05)}
            assert (await api.put("/electricity-rates/site", json=site)).status_code == 201
            assert (await api.put("/electricity-rates/row", json=circuit)).status_code == 201
            txs = {}
            for charger in ("CP-ROW", "CP-WALL"):
                async with csms.charger(charger) as cp:
                    tx = (await cp.call("StartTransaction", START))["transactionId"]
                    if charger == "CP-ROW":
                        off = {"name": "Row", "phaseLimitsA": [32, 32, 32]}
                        assert (await api.put("/circuits/ROW", json=off)).status_code == 200
                    stop = {"transactionId": tx, "meterStop": 13000}
                    await cp.call("StopTransaction", {**stop, "timestamp": "2026-03-02T16:30:00Z"})
                txs[charger] = tx
            cdrs = await events.until(2, of_type="cdr.created")
            views = {c: (await api.get(f"/transactions/{tx}")).json() for c, tx in txs.items()}
    summary = {cdr["data"]["chargePointId"]: cdr["data"] for cdr in cdrs}
    # 12 kWh at the circuit's 0.05 = 0.60, at the site's 0.15 = 1.80; sold for nothing.
    for charger, purchase in (("CP-ROW", 0.6), ("CP-WALL", 1.8)):
        data, view = summary[charger], views[charger]
        assert data["tariffId"] is None
        assert data["cost"] == {"currency": "EUR", "exclVat": 0.0, "inclVat": 0.0}
        assert (data["purchaseCost"], data["margin"]) == (purchase, -purchase), charger
        assert (view["tariffId"], view["cost"]) == (None, None)
        assert (view["purchaseCost"], view["margin"]) == (purchase, -purchase), charger


@pytest.mark.postgres
async def test_a_session_without_a_tariff_or_a_rate_has_neither(csms: RunningCsms) -> None:
    """No tariff and no rate for its site (another site's does not count): no purchase cost
    and no margin, in the CDR or the API."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        await api.put("/locations/BER", json=BERLIN)
        await api.put("/locations/ELSEWHERE", json=BERLIN)
        await api.put("/charge-points/CP-NONE", json={"locationId": "BER"})
        other = {"locationId": "ELSEWHERE", "timeOfUse": every_day(0.15)}
        assert (await api.put("/electricity-rates/other", json=other)).status_code == 201
        async with csms.charger("CP-NONE") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            stop = {"transactionId": tx, "meterStop": 13000}
            await cp.call("StopTransaction", {**stop, "timestamp": "2026-03-02T16:30:00Z"})
        (cdr,) = await events.until(1, of_type="cdr.created")
        view = (await api.get(f"/transactions/{tx}")).json()
    assert (cdr["data"]["tariffId"], cdr["data"]["energyWh"]) == (None, 12000)
    assert "purchaseCost" not in cdr["data"]
    assert "margin" not in cdr["data"]
    assert (view["purchaseCost"], view["margin"], view["tariffId"]) == (None, None, None)


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.postgres
async def test_an_estimated_cdr_without_a_tariff_is_bought_and_credited(
    csms: RunningCsms,
) -> None:
    """Force stop at 10 kWh: the estimate is bought for 1.50 (margin -1.50); the charger's
    Stop at 16 kWh: the credit negates both, the replacement is bought for 2.40."""
    now = datetime.now(UTC)
    began = now - timedelta(hours=1)
    start = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": z(began)}
    sampled = [{"value": "10000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    mqtt = mqtt_of(csms)
    async with csms.api() as api:
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
        await api.put("/locations/BER", json=BERLIN)
        await api.put("/charge-points/CP-EST", json={"locationId": "BER"})
        site = {"locationId": "BER", "timeOfUse": every_day(0.15)}
        assert (await api.put("/electricity-rates/site", json=site)).status_code == 201
    async with (
        subscribed(mqtt.url, mqtt.topic_prefix) as events,
        strict_charger(f"{csms.ocpp_url}/CP-EST") as charger,
        csms.api() as api,
    ):
        tx = (await charger.call("StartTransaction", start))["transactionId"]
        value = [{"timestamp": z(began + timedelta(minutes=30)), "sampledValue": sampled}]
        await charger.call(
            "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": value}
        )
        forced = await api.post(f"/transactions/{tx}/stop", json={"force": True})
        (estimate,) = await events.until(1, of_type="cdr.created")
        estimated_view = (await api.get(f"/transactions/{tx}")).json()
        stop = {"transactionId": tx, "meterStop": 16_000, "timestamp": z(now)}
        await charger.call("StopTransaction", stop)
        cdrs = await events.until(3, of_type="cdr.created")
        view = (await api.get(f"/transactions/{tx}")).json()
    assert forced.status_code == 200
    bought = [(c["data"]["cdrId"], c["data"]["purchaseCost"], c["data"]["margin"]) for c in cdrs]
    assert estimate["data"]["estimated"] is True
    assert bought == [(str(tx), 1.5, -1.5), (f"{tx}-C", -1.5, 1.5), (f"{tx}-R", 2.4, -2.4)]
    assert (estimated_view["purchaseCost"], estimated_view["margin"]) == (1.5, -1.5)
    # The transaction shows its latest CDR's.
    assert (view["purchaseCost"], view["margin"], view["tariffId"]) == (2.4, -2.4, None)


async def test_a_rate_in_another_currency_gives_no_purchase_cost(database_url: str) -> None:
    """A rate made in CHF, sessions sold (or not) in EUR after [ocpi] currency changed:
    csms converts nothing, so neither session has a purchase cost or a margin; the
    tariffed one keeps its cost."""
    async with running_csms(no_balancing(database_url, currency="CHF")) as csms:
        async with csms.api() as api:
            await api.put("/locations/BER", json=BERLIN)
            site = {"locationId": "BER", "timeOfUse": every_day(0.15)}
            rate = await api.put("/electricity-rates/site", json=site)
    assert rate.json()["currency"] == "CHF"
    async with running_csms(no_balancing(database_url)) as csms:
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            await api.put(f"/id-tags/{TAG}", json={"status": "Accepted"})
            for charger in ("CP-SOLD", "CP-FREE"):
                await api.put(f"/charge-points/{charger}", json={"locationId": "BER"})
            await api.put("/tariffs/TOD", json=DAY_AND_EVENING)
            await api.put("/tariff-assignments/evses/CP-SOLD/1", json={"tariffId": "TOD"})
            txs = {}
            for charger in ("CP-SOLD", "CP-FREE"):
                async with csms.charger(charger) as cp:
                    tx = (await cp.call("StartTransaction", START))["transactionId"]
                    stop = {"transactionId": tx, "meterStop": 13000}
                    await cp.call("StopTransaction", {**stop, "timestamp": "2026-03-02T16:30:00Z"})
                txs[charger] = tx
            cdrs = await events.until(2, of_type="cdr.created")
            views = {c: (await api.get(f"/transactions/{tx}")).json() for c, tx in txs.items()}
    summary = {cdr["data"]["chargePointId"]: cdr["data"] for cdr in cdrs}
    assert summary["CP-SOLD"]["cost"] == {"currency": "EUR", "exclVat": 3.6, "inclVat": 4.32}
    for charger in ("CP-SOLD", "CP-FREE"):
        assert "purchaseCost" not in summary[charger]
        assert "margin" not in summary[charger]
        assert (views[charger]["purchaseCost"], views[charger]["margin"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"timeOfUse": []}, "locationId"),
        ({"locationId": "X", "circuitId": "Y"}, "locationId"),
        ({"circuitId": "C1", "timeZone": "Mars/Olympus"}, "body.timeZone"),
        (
            {
                "circuitId": "C1",
                "timeOfUse": [{"startTime": "7:00", "endTime": "23:00", "price": 1}],
            },
            "startTime",
        ),
    ],
)
async def test_invalid_rates_are_refused(
    csms: RunningCsms, body: dict[str, Any], reason: str
) -> None:
    """A rate names one site or circuit, a real zone and valid times, else 422."""
    async with csms.api() as api:
        answer = await api.put("/electricity-rates/bad", json=body)
    assert answer.status_code == 422
    assert reason in answer.json()["detail"]


@pytest.mark.postgres
async def test_a_rate_names_any_circuit_the_circuits_api_accepts(csms: RunningCsms) -> None:
    """Circuit ids have up to 64 characters: a rate for one is stored and read back."""
    long_id = "C" * 64
    body = {"circuitId": long_id, "timeZone": "Europe/Berlin", "timeOfUse": every_day(0.1)}
    async with csms.api() as api:
        circuit = {"name": "Long", "phaseLimitsA": [32, 32, 32]}
        assert (await api.put(f"/circuits/{long_id}", json=circuit)).status_code == 201
        put = await api.put("/electricity-rates/long", json=body)
        got = (await api.get("/electricity-rates/long")).json()
        too_long = await api.put("/electricity-rates/x", json={"circuitId": long_id + "C"})
    assert put.status_code == 201
    assert (got["circuitId"], got["locationId"], got["timeZone"]) == (
        long_id,
        None,
        "Europe/Berlin",
    )
    assert too_long.status_code == 422


@pytest.mark.postgres
async def test_tariff_resolution_order(csms: RunningCsms) -> None:
    """Subscription plan, then user group, then EVSE, then location, then default."""

    def flat(price: float) -> dict[str, Any]:
        component = {"type": "FLAT", "price": price, "step_size": 1}
        return {"elements": [{"price_components": [component]}]}

    async with csms.api() as api:
        user = (await api.post("/users", json={"name": "Order"})).json()["userId"]
        await api.put(f"/id-tags/{TAG}", json={"status": "Accepted", "userId": user})
        await api.put("/locations/BER", json=BERLIN)
        await api.put("/charge-points/CP-ORDER", json={"locationId": "BER"})
        for name, price in (("S", 1), ("U", 2), ("E", 3), ("L", 4), ("D", 5)):
            await api.put(f"/tariffs/{name}", json=flat(price))
        for group in ("S", "U"):
            await api.put(f"/tariff-groups/g{group}", json={"name": group, "tariffId": group})
        await api.put(
            "/subscription-plans/p",
            json={"name": "P", "price": 0, "periodDays": 30, "tariffGroupId": "gS"},
        )
        subscription = (await api.post(f"/users/{user}/subscriptions", json={"planId": "p"})).json()
        await api.put(f"/users/{user}/wallet", json={"tariffGroupId": "gU"})
        await api.put("/tariff-assignments/evses/CP-ORDER/1", json={"tariffId": "E"})
        await api.put("/tariff-assignments/locations/BER", json={"tariffId": "L"})
        await api.put("/tariff-assignments/default", json={"tariffId": "D"})
        removals = [
            ("POST", f"/users/{user}/subscriptions/{subscription['subscriptionId']}/cancel"),
            ("PUT", f"/users/{user}/wallet"),
            ("DELETE", "/tariff-assignments/evses/CP-ORDER/1"),
            ("DELETE", "/tariff-assignments/locations/BER"),
        ]
        seen = []
        # Sessions after the subscription started (it starts when it is made).
        soon = datetime.now(UTC) + timedelta(milliseconds=10)
        async with csms.charger("CP-ORDER") as cp:
            for minute in range(5):
                at = soon + timedelta(milliseconds=minute)
                start = {**START, "timestamp": at.isoformat().replace("+00:00", "Z")}
                tx = (await cp.call("StartTransaction", start))["transactionId"]
                stopped = {"transactionId": tx, "meterStop": 1000, "timestamp": start["timestamp"]}
                await cp.call("StopTransaction", stopped)
                seen.append((await api.get(f"/transactions/{tx}")).json()["tariffId"])
                if minute < len(removals):
                    method, path = removals[minute]
                    body = {"tariffGroupId": None} if method == "PUT" else None
                    await api.request(method, path, json=body)
    assert seen == ["S", "U", "E", "L", "D"]
