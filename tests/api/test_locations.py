"""OCPI Locations: validated on the way in, EVSEs from their chargers, and in CDRs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.events.models_ocpi import Cdr, Location
from tests.sessions import RFID, START, STOP, meter
from tests.support import RunningCsms, mqtt_of, subscribed

GENT: dict[str, Any] = {
    "publish": True,
    "name": "Gent Zuid",
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "postal_code": "9000",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "parking_type": "ON_STREET",
    "time_zone": "Europe/Brussels",
    "opening_times": {"twentyfourseven": True},
    "facilities": ["BUS_STOP", "CAFE"],
    "energy_mix": {"is_green_energy": True},
    "images": [{"url": "https://example.com/a.jpg", "category": "LOCATION", "type": "jpeg"}],
    "operator": {"name": "Example CPO"},
}


@pytest.mark.postgres
async def test_location_lifecycle_and_live_evses(csms: RunningCsms) -> None:
    """PUT creates then replaces; GET shows one EVSE per connector with its live status."""
    async with csms.api() as api:
        created = await api.put("/locations/LOC-1", json=GENT)
        replaced = await api.put("/locations/LOC-1", json={**GENT, "name": "Gent Zuid 2"})
        await api.put(
            "/charge-points/CP-LOC",
            json={
                "locationId": "LOC-1",
                "connectorSpec": {
                    "standard": "IEC_62196_T2_COMBO",
                    "format": "CABLE",
                    "powerType": "DC",
                    "maxVoltage": 920,
                    "maxAmperage": 200,
                },
            },
        )
        async with csms.charger("CP-LOC") as cp:
            await cp.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Charging"},
            )
            await cp.call(
                "StatusNotification",
                {"connectorId": 2, "errorCode": "NoError", "status": "Faulted"},
            )
            body = (await api.get("/locations/LOC-1")).json()
        offline = (await api.get("/locations/LOC-1")).json()
        listed = (await api.get("/locations")).json()
        deleted = await api.delete("/locations/LOC-1")
        gone = await api.get("/locations/LOC-1")
    assert (created.status_code, replaced.status_code) == (201, 200)
    Location.model_validate_json(orjson.dumps(body))
    assert body["name"] == "Gent Zuid 2"
    assert (body["country_code"], body["party_id"]) == ("XX", "CSM")
    assert [(e["uid"], e["evse_id"], e["status"]) for e in body["evses"]] == [
        ("CP-LOC*1", "XX*CSM*ECP*LOC*1", "CHARGING"),
        ("CP-LOC*2", "XX*CSM*ECP*LOC*2", "OUTOFORDER"),
    ]
    assert body["evses"][0]["connectors"][0]["standard"] == "IEC_62196_T2_COMBO"
    assert {e["status"] for e in offline["evses"]} == {"UNKNOWN"}
    assert listed["total"] == 1
    assert (deleted.status_code, gone.status_code) == (204, 404)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"parking_type": "SOMEWHERE"}, "body.parking_type"),
        ({"facilities": ["POOL"]}, "body.facilities.0"),
        ({"coordinates": {"latitude": "51.0", "longitude": "3.7"}}, "body.coordinates.latitude"),
        ({"country": "Belgium"}, "body.country"),
        ({"images": [{"url": "https://x", "category": "SELFIE", "type": "jpg"}]}, "category"),
        ({"evses": []}, "body.evses: set by csms"),
        ({"id": "OTHER"}, "body.id"),
        ({"colour": "green"}, "body.colour"),
    ],
)
async def test_invalid_locations_are_refused_with_the_field(
    csms: RunningCsms, change: dict[str, Any], reason: str
) -> None:
    """A wrong value is a 422 that names the field (and, for enums, the allowed values)."""
    async with csms.api() as api:
        response = await api.put("/locations/LOC-BAD", json={**GENT, **change})
    assert response.status_code == 422
    assert reason in response.json()["detail"]


async def test_location_updated_event_and_a_full_cdr(csms: RunningCsms) -> None:
    """location.updated carries the Location; a charger's CDR carries its location snapshot."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        await api.put("/locations/LOC-2", json=GENT)
        await api.put("/charge-points/CP-CDR", json={"locationId": "LOC-2"})
        async with csms.charger("CP-CDR") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:45:00Z"))
            await cp.call("StopTransaction", {**STOP, "transactionId": tx})
        (location,) = await events.until(1, of_type="location.updated")
        (cdr,) = await events.until(1, of_type="cdr.created")
    assert location["data"]["ocpi"]["id"] == "LOC-2"
    model = Cdr.model_validate_json(orjson.dumps(cdr["data"]["ocpi"]))
    assert float(model.total_energy) == 7.5
    assert float(model.total_time) == 1.5
    assert cdr["data"]["ocpi"]["cdr_location"]["id"] == "LOC-2"
    assert cdr["data"]["ocpi"]["cdr_location"]["evse_id"] == "XX*CSM*ECP*CDR*1"
    stopped = events.of("session.stopped")[0]["data"]["ocpi"]
    assert stopped["location_id"] == "LOC-2"
