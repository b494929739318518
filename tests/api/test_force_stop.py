"""A force stop ends the session for consumers at once; the charger's late Stop corrects it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from csms.events.models_ocpi import Cdr
from tests.strict_charger import strict_charger
from tests.support import RunningCsms, mqtt_of, subscribed

pytestmark = pytest.mark.postgres

LOCATION: dict[str, Any] = {
    "publish": True,
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "time_zone": "Europe/Brussels",
}


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def register(tx: int, wh: int, at: datetime) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": z(at), "sampledValue": [{"value": str(wh)}]}],
    }


async def test_force_stop_publishes_the_end_and_the_late_stop_credits_it(
    csms: RunningCsms,
) -> None:
    """session.stopped forced + estimated CDR at once; the real Stop: credit CDR, then a new one."""
    now = datetime.now(UTC)
    began = now - timedelta(hours=1)
    start = {"connectorId": 1, "idTag": "A", "meterStart": 100, "timestamp": z(began)}
    mqtt = mqtt_of(csms)
    async with csms.api() as api:
        await api.put("/id-tags/A", json={"status": "Accepted"})
        await api.put("/locations/LOC-F", json=LOCATION)
        await api.put("/charge-points/CP-FORCED", json={"locationId": "LOC-F"})
    async with (
        subscribed(mqtt.url, mqtt.topic_prefix) as events,
        strict_charger(f"{csms.ocpp_url}/CP-FORCED") as charger,
        csms.api() as api,
    ):
        tx = (await charger.call("StartTransaction", start))["transactionId"]
        await charger.call("MeterValues", register(tx, 400, began + timedelta(minutes=10)))
        forced = await api.post(f"/transactions/{tx}/stop", json={"force": True})
        (ended,) = await events.until(1, of_type="session.stopped")
        (estimate,) = await events.until(1, of_type="cdr.created")
        # The charger had not stopped: its repeated Start is still the same transaction.
        assert (await charger.call("StartTransaction", start))["transactionId"] == tx
        # Still charging until its own Stop: a reading after the forced end, no session.updated.
        # (Minutes ahead of the test's clock: later than the forced end however slow the
        # run, yet within the 5 minutes before a timestamp is flagged future.)
        await charger.call("MeterValues", register(tx, 700, now + timedelta(minutes=3)))
        forced_flags = [
            s["flags"] for s in (await api.get(f"/transactions/{tx}/meter-values")).json()["items"]
        ]
        stop = {"transactionId": tx, "meterStop": 900, "timestamp": z(now + timedelta(minutes=4))}
        await charger.call("StopTransaction", stop)
        stopped = await events.until(2, of_type="session.stopped")
        cdrs = await events.until(3, of_type="cdr.created")
        final = (await api.get(f"/transactions/{tx}")).json()
        samples = (await api.get(f"/transactions/{tx}/meter-values")).json()["items"]
    assert forced.status_code == 200
    assert forced.json()["response"] == {"status": "Accepted"}
    assert ("RemoteStopTransaction", {"transactionId": tx}) in charger.received
    assert (ended["data"]["reason"], ended["data"]["ocpi"]["status"]) == ("forced", "COMPLETED")
    assert ended["data"]["ocpi"]["kwh"] == 0.3
    first = Cdr.model_validate_json(orjson.dumps(estimate["data"]["ocpi"]))
    assert (first.id, float(first.total_energy), first.credit) == (str(tx), 0.3, None)
    assert (estimate["data"]["reason"], estimate["data"]["estimated"]) == ("forced", True)
    assert forced_flags == [[], ["after_stop"]]
    assert len(events.of("session.updated")) == 1
    assert (stopped[1]["data"]["reason"], stopped[1]["data"]["stopReason"]) == ("local", "Local")
    assert stopped[1]["data"]["ocpi"]["kwh"] == 0.8
    credit = Cdr.model_validate_json(orjson.dumps(cdrs[1]["data"]["ocpi"]))
    assert (credit.id, credit.credit, credit.credit_reference_id) == (f"{tx}-C", True, str(tx))
    assert credit.model_dump(exclude={"id", "credit", "credit_reference_id", "last_updated"}) == (
        first.model_dump(exclude={"id", "credit", "credit_reference_id", "last_updated"})
    )
    assert cdrs[1]["data"]["creditReferenceId"] == str(tx)
    replacement = Cdr.model_validate_json(orjson.dumps(cdrs[2]["data"]["ocpi"]))
    assert (replacement.id, float(replacement.total_energy)) == (f"{tx}-R", 0.8)
    assert (replacement.credit, replacement.credit_reference_id) == (None, None)
    assert cdrs[2]["data"]["replacesCdrId"] == str(tx)
    assert (final["meterStop"], final["energyWh"], final["stopReason"]) == (900, 800.0, "Local")
    # The reading between the forced end and the real Stop counts again.
    assert [s["flags"] for s in samples] == [[], []]
