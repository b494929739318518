"""Transactions over real sockets and a real database, on SQLite and PostgreSQL
(docs/ocpp.md, "Transactions")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from csms.store.tables import MeterValue, Transaction
from tests.support import RunningCsms, mqtt_of, subscribed

pytestmark = pytest.mark.postgres

T0 = "2024-03-01T08:00:00Z"


def start(connector: int = 1, tag: str = "TAG", meter: int = 1000, at: str = T0) -> dict[str, Any]:
    return {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": at}


def stop(tx: int, meter: int, at: str, **extra: Any) -> dict[str, Any]:
    return {"transactionId": tx, "meterStop": meter, "timestamp": at, **extra}


def meter(tx: int | None, wh: float, at: str, connector: int = 1, **sampled: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "connectorId": connector,
        "meterValue": [{"timestamp": at, "sampledValue": [{"value": str(wh), **sampled}]}],
    }
    if tx is not None:
        payload["transactionId"] = tx
    return payload


async def transaction(csms: RunningCsms, tx: int) -> dict[str, Any]:
    async with csms.api() as api:
        response = await api.get(f"/transactions/{tx}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def count(csms: RunningCsms, model: Any, *where: Any) -> int:
    async with csms.app.database.sessions() as session:
        query = select(func.count()).select_from(model).where(*where)
        return int((await session.execute(query)).scalar_one())


async def accept_tag(csms: RunningCsms, tag: str, **extra: Any) -> None:
    async with csms.api() as api:
        response = await api.put(f"/id-tags/{tag}", json={"status": "Accepted", **extra})
        assert response.status_code in (200, 201), response.text


async def test_offline_replay_keeps_charger_timestamps(csms: RunningCsms) -> None:
    """Start 3 h ago, 30 MeterValues, Stop 1 h ago in a burst: all stored, in order."""
    base = datetime.now(UTC) - timedelta(hours=3)
    at = [(base + timedelta(minutes=4 * i)).isoformat().replace("+00:00", "Z") for i in range(32)]
    async with csms.charger("CP-T26") as cp:
        tx = (await cp.call("StartTransaction", start(meter=0, at=at[0])))["transactionId"]
        for i in range(30):
            await cp.call("MeterValues", meter(tx, 100 * (i + 1), at[i + 1]))
        await cp.call("StopTransaction", stop(tx, 3000, at[31]))
    body = await transaction(csms, tx)
    assert body["status"] == "completed"
    assert body["energyWh"] == 3000.0
    assert body["startTimestamp"] == at[0].replace("+00:00", "Z")
    async with csms.api() as api:
        samples = (await api.get(f"/transactions/{tx}/meter-values")).json()["items"]
    assert [s["value"] for s in samples] == [str(100 * (i + 1)) for i in range(30)]


async def test_repeated_start_returns_the_same_transaction(csms: RunningCsms) -> None:
    """The identical Start resent (new message id) gets the same id; one row."""
    await accept_tag(csms, "TAG")
    async with csms.charger("CP-T27") as cp:
        first = await cp.call("StartTransaction", start())
        second = await cp.call("StartTransaction", start())
        # The same instant written with an offset is the same StartTransaction.
        third = await cp.call("StartTransaction", start(at="2024-03-01T09:00:00+01:00"))
    assert first == second == third
    assert first["idTagInfo"]["status"] == "Accepted"
    assert await count(csms, Transaction, Transaction.charge_point_id == "CP-T27") == 1


async def test_repeated_stop_records_one_stop(csms: RunningCsms) -> None:
    """A Stop resent 3 times gets 3 CALLRESULTs, one stop, transactionData once."""
    data = [{"timestamp": "2024-03-01T08:30:00Z", "sampledValue": [{"value": "1500"}]}]
    async with csms.charger("CP-T28") as cp:
        tx = (await cp.call("StartTransaction", start()))["transactionId"]
        answers = [
            await cp.call(
                "StopTransaction", stop(tx, 2000, "2024-03-01T09:00:00Z", transactionData=data)
            )
            for _ in range(3)
        ]
        late = await cp.call("StopTransaction", stop(tx, 9999, "2024-03-01T10:00:00Z"))
    assert answers == [{}, {}, {}]
    assert late == {}
    body = await transaction(csms, tx)
    assert (body["meterStop"], body["stopTimestamp"], body["energyWh"]) == (
        2000,
        "2024-03-01T09:00:00Z",
        1000.0,
    )
    assert await count(csms, MeterValue, MeterValue.transaction_id == tx) == 1


async def test_stop_for_unknown_transaction_is_acknowledged_and_kept(csms: RunningCsms) -> None:
    """A Stop for unknown id 987654 gets a CALLRESULT and is kept as an orphan, once."""
    async with csms.charger("CP-T29") as cp:
        payload = stop(987654, 5000, "2024-03-01T09:00:00Z", idTag="TAG")
        answer = await cp.call("StopTransaction", payload)
        assert await cp.call("StopTransaction", payload) == answer
    assert answer == {"idTagInfo": {"status": "Invalid"}}
    async with csms.api() as api:
        listed = (await api.get("/transactions", params={"chargePointId": "CP-T29"})).json()
    assert listed["total"] == 1
    (orphan,) = listed["items"]
    assert "orphan_stop" in orphan["flags"]
    assert orphan["meterStop"] == 5000


async def test_transaction_id_minus_one(csms: RunningCsms) -> None:
    """MeterValues and Stop with transactionId -1 are answered and stored."""
    async with csms.charger("CP-T30") as cp:
        assert await cp.call("MeterValues", meter(-1, 1200, "2024-03-01T08:10:00Z")) == {}
        assert await cp.call("StopTransaction", stop(-1, 1500, "2024-03-01T08:20:00Z")) == {}
    assert await count(csms, MeterValue, MeterValue.charge_point_id == "CP-T30") == 1
    assert await count(csms, Transaction, Transaction.charge_point_id == "CP-T30") == 1


async def test_meter_values_without_usable_transaction_are_kept(csms: RunningCsms) -> None:
    """A transactionId 0 is linked by time window; connector 0 clock samples are stored unlinked."""
    async with csms.charger("CP-T31") as cp:
        tx = (await cp.call("StartTransaction", start(meter=0)))["transactionId"]
        assert await cp.call("MeterValues", meter(0, 700, "2024-03-01T08:05:00Z")) == {}
        clock = meter(None, 99999, "2024-03-01T08:15:00Z", connector=0, context="Sample.Clock")
        assert await cp.call("MeterValues", clock) == {}
    assert await count(csms, MeterValue, MeterValue.transaction_id == tx) == 1
    assert await count(csms, MeterValue, MeterValue.connector_id == 0) == 1
    assert (await transaction(csms, tx))["energyWh"] == 700.0


async def test_sanity_failures_are_flagged_not_refused(csms: RunningCsms) -> None:
    """A meterStop below meterStart, Stop before Start, a future Start: answered and flagged."""
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    async with csms.charger("CP-T33") as cp:
        tx = (await cp.call("StartTransaction", start(meter=5000)))["transactionId"]
        await cp.call("StopTransaction", stop(tx, 4000, "2024-03-01T07:00:00Z"))
        tx2 = (await cp.call("StartTransaction", start(connector=2, at=future)))["transactionId"]
    first = await transaction(csms, tx)
    assert first["energyWh"] == -1000.0
    assert {"meter_regression", "stop_before_start"} <= set(first["flags"])
    assert "future_start" in (await transaction(csms, tx2))["flags"]


async def test_blocked_tag_still_gets_a_transaction(csms: RunningCsms) -> None:
    """A Start with a blocked tag gets a transactionId and Blocked; the Stop is accepted."""
    async with csms.api() as api:
        await api.put("/id-tags/BLOCKED1", json={"status": "Blocked"})
    async with csms.charger("CP-T34") as cp:
        started = await cp.call("StartTransaction", start(tag="BLOCKED1"))
        assert started["idTagInfo"] == {"status": "Blocked"}
        tx = started["transactionId"]
        stopped = await cp.call(
            "StopTransaction", stop(tx, 1100, "2024-03-01T08:01:00Z", reason="DeAuthorized")
        )
    assert stopped == {}
    body = await transaction(csms, tx)
    assert (body["status"], body["stopReason"]) == ("completed", "DeAuthorized")


async def test_new_start_ends_the_open_transaction(csms: RunningCsms) -> None:
    """A second Start on a busy connector is accepted and ends the first as implicit."""
    async with csms.charger("CP-T35") as cp:
        first = (await cp.call("StartTransaction", start()))["transactionId"]
        second = (await cp.call("StartTransaction", start(tag="OTHER", at="2024-03-01T09:00:00Z")))[
            "transactionId"
        ]
        assert first != second
        old = await transaction(csms, first)
        assert old["status"] == "completed"
        assert old["stopTimestamp"] == "2024-03-01T09:00:00Z"
        assert "implicitly_ended" in old["flags"]
        assert (await transaction(csms, second))["status"] == "active"
        # The lost Stop arriving late still records the charger's values once.
        await cp.call("StopTransaction", stop(first, 1800, "2024-03-01T08:50:00Z"))
    old = await transaction(csms, first)
    assert (old["meterStop"], old["stopTimestamp"]) == (1800, "2024-03-01T08:50:00Z")


@pytest.mark.parametrize(
    ("timestamp", "stored"),
    [
        ("2024-01-01T10:00:00", "2024-01-01T10:00:00Z"),
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"),
        ("2024-01-01T10:00:00.123456Z", "2024-01-01T10:00:00.123456Z"),
    ],
)
async def test_timestamps_are_normalised_to_utc(
    csms: RunningCsms, timestamp: str, stored: str
) -> None:
    """Naive is UTC, offsets normalised, fractions kept."""
    async with csms.charger() as cp:
        tx = (await cp.call("StartTransaction", start(at=timestamp)))["transactionId"]
    assert (await transaction(csms, tx))["startTimestamp"] == stored


async def test_garbage_timestamp_on_a_transaction_message(csms: RunningCsms) -> None:
    """'yesterday' on a Start is replaced by the receipt time and flagged, not refused."""
    async with csms.charger() as cp:
        tx = (await cp.call("StartTransaction", start(at="yesterday")))["transactionId"]
    body = await transaction(csms, tx)
    assert "unparsable_start" in body["flags"]
    started = datetime.fromisoformat(body["startTimestamp"])
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60


async def test_transaction_ids_are_scoped_to_the_charger(csms: RunningCsms) -> None:
    """A Stop naming another charger's transaction does not stop it (OCPP 1.6 §4.10: a
    charger stops the transactionId its own StartTransaction.conf gave it)."""
    async with csms.charger("CP-A") as a, csms.charger("CP-B") as b:
        tx = (await a.call("StartTransaction", start()))["transactionId"]
        assert await b.call("StopTransaction", stop(tx, 2000, "2024-03-01T09:00:00Z")) == {}
    assert (await transaction(csms, tx))["status"] == "active"


async def test_energy_in_kwh_registers(csms: RunningCsms) -> None:
    """The running energy is derived from a kWh register as well as a Wh one."""
    async with csms.charger() as cp:
        tx = (await cp.call("StartTransaction", start(meter=2000)))["transactionId"]
        await cp.call("MeterValues", meter(tx, 3.25, "2024-03-01T08:30:00Z", unit="kWh"))
    assert (await transaction(csms, tx))["energyWh"] == 1250.0


async def test_expired_tag(csms: RunningCsms) -> None:
    """A tag past its expiry date is Expired in Authorize and in the Start answer."""
    await accept_tag(csms, "OLD", expiryDate="2020-01-01T00:00:00Z")
    async with csms.charger() as cp:
        assert (await cp.call("Authorize", {"idTag": "OLD"}))["idTagInfo"]["status"] == "Expired"
        started = await cp.call("StartTransaction", start(tag="OLD"))
    assert started["idTagInfo"]["status"] == "Expired"


async def meter_values_of(csms: RunningCsms, tx: int) -> list[dict[str, Any]]:
    async with csms.api() as api:
        response = await api.get(f"/transactions/{tx}/meter-values")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_clockless_charger_gets_a_new_transaction_after_its_stop(csms: RunningCsms) -> None:
    """The Start key of a stopped transaction starts a new one whose Stop counts; clock flagged."""
    unset = "2000-01-01T00:00:00Z"  # no real-time clock: every Start at its epoch, meterStart 0
    async with csms.charger("CP-NORTC") as cp:
        first = (await cp.call("StartTransaction", start(meter=0, at=unset)))["transactionId"]
        await cp.call("StopTransaction", stop(first, 0, unset, reason="EVDisconnected"))
        second = (await cp.call("StartTransaction", start(meter=0, at=unset)))["transactionId"]
        # While it is open, the same Start resent is still the same transaction.
        assert (await cp.call("StartTransaction", start(meter=0, at=unset)))[
            "transactionId"
        ] == second
        await cp.call("StopTransaction", stop(second, 0, unset, reason="Remote"))
    assert second != first
    assert await count(csms, Transaction, Transaction.charge_point_id == "CP-NORTC") == 2
    old, new = await transaction(csms, first), await transaction(csms, second)
    assert (old["status"], old["stopReason"]) == ("completed", "EVDisconnected")
    assert (new["status"], new["stopReason"]) == ("completed", "Remote")
    assert {"unset_start", "unset_stop"} <= set(new["flags"])


async def test_differing_values_at_one_instant_are_all_kept(csms: RunningCsms) -> None:
    """Two MeterValues at one timestamp with different values are both stored; a repeat once."""
    async with csms.charger("CP-SAME-T") as cp:
        tx = (await cp.call("StartTransaction", start(meter=0)))["transactionId"]
        for value in (100, 250, 250):
            await cp.call("MeterValues", meter(tx, value, "2024-03-01T08:05:00Z"))
    assert sorted(s["value"] for s in await meter_values_of(csms, tx)) == ["100", "250"]


async def test_samples_after_the_stop_are_flagged_and_do_not_count(csms: RunningCsms) -> None:
    """Samples later than the Stop are kept, flagged after_stop, and left out of the energy."""
    after = {"timestamp": "2024-03-01T09:10:00Z", "sampledValue": [{"value": "2600"}]}
    async with csms.charger("CP-AFTER") as cp:
        tx = (await cp.call("StartTransaction", start()))["transactionId"]
        await cp.call("MeterValues", meter(tx, 1500, "2024-03-01T08:30:00Z"))
        await cp.call(
            "StopTransaction", stop(tx, 2000, "2024-03-01T09:00:00Z", transactionData=[after])
        )
        await cp.call("MeterValues", meter(tx, 3000, "2024-03-01T09:20:00Z"))
    flags = {s["timestamp"]: s["flags"] for s in await meter_values_of(csms, tx)}
    assert flags == {
        "2024-03-01T08:30:00Z": [],
        "2024-03-01T09:10:00Z": ["after_stop"],
        "2024-03-01T09:20:00Z": ["after_stop"],
    }
    assert (await transaction(csms, tx))["energyWh"] == 1000.0


async def test_an_implicit_end_is_published_then_corrected_by_the_late_stop(
    csms: RunningCsms,
) -> None:
    """A Start ending an open one publishes the end, an estimated CDR; the late Stop credits it."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with csms.charger("CP-IMPLICIT") as cp:
            first = (await cp.call("StartTransaction", start()))["transactionId"]
            await cp.call("MeterValues", meter(first, 1500, "2024-03-01T08:30:00Z"))
            # Replayed out of order: a reading from after the next Start.
            await cp.call("MeterValues", meter(first, 2500, "2024-03-01T09:30:00Z"))
            await cp.call("StartTransaction", start(tag="OTHER", at="2024-03-01T09:00:00Z"))
            ended = await events.until(1, of_type="session.stopped")
            estimate = await events.until(1, of_type="cdr.created")
            body = await transaction(csms, first)
            late = await meter_values_of(csms, first)
            await cp.call("StopTransaction", stop(first, 1800, "2024-03-01T08:50:00Z"))
        stopped = await events.until(2, of_type="session.stopped")
        cdrs = await events.until(3, of_type="cdr.created")
    assert body["energyWh"] == 500.0
    assert [s["flags"] for s in late] == [[], ["after_stop"]]
    assert ended[0]["data"]["reason"] == "implicitly_ended"
    assert "stopReason" not in ended[0]["data"]
    assert ended[0]["data"]["ocpi"]["kwh"] == 0.5
    assert ended[0]["time"] == "2024-03-01T09:00:00.000Z"
    assert estimate[0]["data"] | {"ocpi": None, "oicp": None} == {
        "transactionId": first,
        "cdrId": str(first),
        "reason": "implicitly_ended",
        "estimated": True,
        "credit": False,
        "chargePointId": "CP-IMPLICIT",
        "connectorId": 1,
        "idTag": "TAG",
        "start": "2024-03-01T08:00:00.000Z",
        "stop": "2024-03-01T09:00:00.000Z",
        "energyWh": 500,
        "durationS": 3600,
        "parkingS": 0,
        "tariffId": None,
        "cost": {"currency": "EUR", "exclVat": 0.0, "inclVat": 0.0},
        "ocpi": None,
        "oicp": None,
    }
    assert (stopped[1]["data"]["reason"], stopped[1]["data"]["stopReason"]) == (
        "not_authorized",
        "Local",
    )
    assert stopped[1]["data"]["ocpi"]["kwh"] == 0.8
    credit, replacement = cdrs[1]["data"], cdrs[2]["data"]
    assert (credit["cdrId"], credit["credit"], credit["creditReferenceId"]) == (
        f"{first}-C",
        True,
        str(first),
    )
    assert (credit["reason"], credit["estimated"], credit["oicp"]) == (
        "implicitly_ended",
        True,
        None,
    )
    assert (replacement["cdrId"], replacement["replacesCdrId"]) == (f"{first}-R", str(first))
    assert (replacement["reason"], replacement["estimated"], replacement["credit"]) == (
        "charger",
        False,
        False,
    )
    assert "implicitly_ended" in (await transaction(csms, first))["flags"]
    assert {"cdr_created", "cdr_estimated", "cdr_corrected"} <= set(
        (await transaction(csms, first))["flags"]
    )
