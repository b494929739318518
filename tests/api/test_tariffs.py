"""Tariffs over the API: OCPI 2.2.1 Tariff bodies in snake_case, 422s that name the field,
paging, groups and assignments, and the pricing of an OCPI CDR."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support import RunningCsms

TWO_EURO_PER_HOUR: dict[str, Any] = {
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "TIME", "price": 2.00, "vat": 10.0, "step_size": 300}]}
    ],
}
# examples/cdr_example.json of OCPI 2.2.1, with a wrong total_cost that must be ignored.
SPEC_CDR: dict[str, Any] = {
    "country_code": "BE",
    "party_id": "BEC",
    "id": "12345",
    "start_date_time": "2015-06-29T21:39:09Z",
    "end_date_time": "2015-06-29T23:37:32Z",
    "cdr_token": {
        "country_code": "BE",
        "party_id": "BEC",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "DE8ACC12E46L89",
    },
    "auth_method": "WHITELIST",
    "cdr_location": {
        "id": "LOC1",
        "name": "Gent Zuid",
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "postal_code": "9000",
        "country": "BEL",
        "coordinates": {"latitude": "3.729944", "longitude": "51.047599"},
        "evse_uid": "3256",
        "evse_id": "BE*BEC*E041503003",
        "connector_id": "1",
        "connector_standard": "IEC_62196_T2",
        "connector_format": "SOCKET",
        "connector_power_type": "AC_1_PHASE",
    },
    "currency": "EUR",
    "charging_periods": [
        {
            "start_date_time": "2015-06-29T21:39:09Z",
            "dimensions": [{"type": "TIME", "volume": 1.973}],
            "tariff_id": "12",
        }
    ],
    "total_cost": {"excl_vat": 999.0},
    "total_time_cost": {"excl_vat": 999.0},
    "total_energy": 15.342,
    "total_time": 1.973,
    "last_updated": "2015-06-29T22:01:13Z",
}


@pytest.mark.postgres
async def test_tariff_lifecycle_and_paging(csms: RunningCsms) -> None:
    """PUT creates (201) then replaces (200) an OCPI Tariff; GET, paged list and DELETE."""
    async with csms.api() as api:
        created = await api.put("/tariffs/T-1", json=TWO_EURO_PER_HOUR)
        changed = {**TWO_EURO_PER_HOUR, "type": "REGULAR", "max_price": {"excl_vat": 9}}
        replaced = await api.put("/tariffs/T-1", json=changed)
        await api.put("/tariffs/T-2", json=TWO_EURO_PER_HOUR)
        one = (await api.get("/tariffs/T-1")).json()
        page = (await api.get("/tariffs", params={"limit": 1, "offset": 1})).json()
        deleted = await api.delete("/tariffs/T-1")
        gone = await api.get("/tariffs/T-1")
    assert (created.status_code, replaced.status_code) == (201, 200)
    assert one["id"] == "T-1"
    assert (one["country_code"], one["party_id"], one["currency"]) == ("XX", "CSM", "EUR")
    assert one["type"] == "REGULAR"
    assert one["max_price"] == {"excl_vat": 9.0}
    assert one["elements"][0]["price_components"][0]["step_size"] == 300
    assert one["last_updated"].endswith("Z")
    assert page["total"] == 2
    assert [item["id"] for item in page["items"]] == ["T-2"]
    assert (deleted.status_code, gone.status_code) == (204, 404)


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(TWO_EURO_PER_HOUR)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_with(["elements", 0, "price_components", 0, "price"], -1), "price_components.0.price"),
        (_with(["elements", 0, "price_components", 0, "type"], "VOLUME"), "type"),
        (_with(["elements", 0, "price_components", 0, "step_size"], "5"), "step_size"),
        (_with(["elements"], []), "body.elements"),
        (_with(["elements", 0, "restrictions"], {"start_time": "25:00"}), "start_time"),
        (
            _with(["elements", 0, "restrictions"], {"min_kwh": 10, "max_kwh": 5}),
            "min_kwh/max_kwh",
        ),
        (
            _with(
                ["elements", 0, "price_components", 0],
                {"type": "ENERGY", "price": 0.2, "step_size": 1},
            ),
            None,
        ),
        ({**TWO_EURO_PER_HOUR, "currency": "USD"}, "body.currency"),
        ({**TWO_EURO_PER_HOUR, "party_id": "ABC"}, "body.party_id"),
        ({**TWO_EURO_PER_HOUR, "tarif_alt_text": []}, "tarif_alt_text"),
        ({**TWO_EURO_PER_HOUR, "last_updated": "2020-01-01T00:00:00Z"}, "body.last_updated"),
    ],
    ids=[
        "negative price",
        "unknown dimension",
        "step as text",
        "no elements",
        "bad time",
        "min above max",
        "valid energy",
        "other currency",
        "other party",
        "misspelt field",
        "last_updated",
    ],
)
async def test_invalid_tariffs_are_refused_naming_the_field(
    csms: RunningCsms, body: dict[str, Any], field: str | None
) -> None:
    """An invalid Tariff gets 422 whose detail names the field, and nothing is stored."""
    async with csms.api() as api:
        answer = await api.put("/tariffs/BAD", json=body)
        stored = await api.get("/tariffs/BAD")
    if field is None:
        assert answer.status_code == 201
        return
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]
    assert stored.status_code == 404


async def test_reservation_elements_price_only_flat_and_time(csms: RunningCsms) -> None:
    """mod_tariffs: a reservation element with an ENERGY component is refused."""
    body = _with(
        ["elements", 0],
        {
            "price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}],
            "restrictions": {"reservation": "RESERVATION"},
        },
    )
    async with csms.api() as api:
        answer = await api.put("/tariffs/RES", json=body)
    assert answer.status_code == 422
    assert "body.elements.0" in answer.json()["detail"]


@pytest.mark.postgres
async def test_price_endpoint_prices_the_spec_cdr(csms: RunningCsms) -> None:
    """POST /tariffs/{id}/price answers the CDR's cost fields, ignoring the CDR's own."""
    async with csms.api() as api:
        await api.put("/tariffs/12", json=TWO_EURO_PER_HOUR)
        answer = await api.post("/tariffs/12/price", json=SPEC_CDR)
        missing = await api.post("/tariffs/NOPE/price", json=SPEC_CDR)
        invalid = await api.post("/tariffs/12/price", json={**SPEC_CDR, "charging_periods": []})
        too_long = await api.post(
            "/tariffs/12/price", json={**SPEC_CDR, "end_date_time": "2015-09-29T23:37:32Z"}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total_cost"] == {"excl_vat": 4.0, "incl_vat": 4.4}
    assert body["total_time_cost"] == {"excl_vat": 4.0, "incl_vat": 4.4}
    assert body["total_energy_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
    assert body["total_fixed_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
    assert body["total_parking_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
    assert body["charging_periods"] == [
        {
            "start_date_time": "2015-06-29T21:39:09Z",
            "dimensions": [{"type": "ENERGY", "volume": 0.0}, {"type": "TIME", "volume": 1.973}],
            "tariff_id": "12",
        }
    ]
    assert missing.status_code == 404
    assert invalid.status_code == 422
    assert "charging_periods" in invalid.json()["detail"]
    assert too_long.status_code == 422
    assert "body.end_date_time" in too_long.json()["detail"]


@pytest.mark.postgres
async def test_groups_and_assignments(csms: RunningCsms) -> None:
    """Groups and EVSE/location/default assignments name existing tariffs only."""
    async with csms.api() as api:
        unknown = await api.put("/tariff-groups/fleet", json={"name": "Fleet", "tariffId": "T"})
        await api.put("/tariffs/T", json=TWO_EURO_PER_HOUR)
        group = await api.put("/tariff-groups/fleet", json={"name": "Fleet", "tariffId": "T"})
        default = await api.put("/tariff-assignments/default", json={"tariffId": "T"})
        location = await api.put("/tariff-assignments/locations/LOC-1", json={"tariffId": "T"})
        evse = await api.put("/tariff-assignments/evses/CP-1/2", json={"tariffId": "T"})
        listed = (await api.get("/tariff-assignments")).json()
        removed = await api.delete("/tariff-assignments/locations/LOC-1")
        again = await api.delete("/tariff-assignments/locations/LOC-1")
        groups = (await api.get("/tariff-groups")).json()
    assert unknown.status_code == 422
    assert "tariffId" in unknown.json()["detail"]
    assert group.status_code == 201
    assert (default.status_code, location.status_code, evse.status_code) == (201, 201, 201)
    assert {
        (item["scope"], item.get("locationId"), item.get("chargePointId"), item.get("connectorId"))
        for item in listed["items"]
    } == {
        ("default", None, None, None),
        ("location", "LOC-1", None, None),
        ("evse", None, "CP-1", 2),
    }
    assert (removed.status_code, again.status_code) == (204, 404)
    assert groups["items"] == [{"groupId": "fleet", "name": "Fleet", "tariffId": "T"}]


async def test_a_rate_for_an_unknown_site_or_circuit_is_refused(csms: RunningCsms) -> None:
    """A purchase rate must name a location or circuit that exists: a typo would otherwise
    leave every session without a purchase cost and nobody would notice."""
    every_day = [{"startTime": "00:00", "endTime": "00:00", "price": 0.15}]
    async with csms.api() as api:
        no_site = await api.put(
            "/electricity-rates/r1", json={"locationId": "NOPE", "timeOfUse": every_day}
        )
        no_circuit = await api.put(
            "/electricity-rates/r2", json={"circuitId": "NOPE", "timeOfUse": every_day}
        )
        listed = (await api.get("/electricity-rates")).json()
    assert (no_site.status_code, no_site.json()["detail"]) == (
        422,
        "body.locationId: no location NOPE; create it first",
    )
    assert (no_circuit.status_code, no_circuit.json()["detail"]) == (
        422,
        "body.circuitId: no circuit NOPE; create it first",
    )
    assert listed["total"] == 0
