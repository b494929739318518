"""Locations as Sender: pull with pagination, and pushes (PUT, EVSE status PATCH, REMOVED)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ocpi_partner import FakeEmsp, registered_emsp
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres

PATCH_EXAMPLE = (
    Path(__file__).parent.parent
    / "events"
    / "fixtures"
    / "ocpi"
    / "location_patch_example_status.json"
)


def site(name: str, *, publish: bool = True) -> dict[str, Any]:
    return {
        "publish": publish,
        "name": name,
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "postal_code": "9000",
        "country": "BEL",
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
        "time_zone": "Europe/Brussels",
    }


async def add_location(
    csms: RunningCsms, location_id: str, *chargers: str, publish: bool = True
) -> None:
    async with csms.api() as api:
        answer = await api.put(f"/locations/{location_id}", json=site(location_id, publish=publish))
        assert answer.status_code in (200, 201), answer.text
        for charger in chargers:
            linked = await api.put(f"/charge-points/{charger}", json={"locationId": location_id})
            assert linked.status_code in (200, 201), linked.text


async def publish(csms: RunningCsms, body: dict[str, Any], partner_id: str = "emsp") -> None:
    async with csms.api() as api:
        answer = await api.put(f"/partners/{partner_id}/locations", json=body)
    assert answer.status_code == 200, answer.text


async def status(cp: Any, connector_id: int, value: str) -> None:
    await cp.call(
        "StatusNotification", {"connectorId": connector_id, "errorCode": "NoError", "status": value}
    )


async def test_pull_gives_the_partner_its_locations_page_by_page(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """GET List: `all` gives published locations only, paginated with X-Total-Count,
    X-Limit and a Link to the next page that keeps the filters; single Location, EVSE and
    Connector; an unknown or private one is 404 with 2003."""
    await add_location(roaming, "LOC-A", "CP-PULL")
    await add_location(roaming, "LOC-B")
    await add_location(roaming, "LOC-PRIVATE", publish=False)
    await registered_emsp(roaming, emsp)
    await publish(roaming, {"all": True})
    url = emsp.endpoint("locations", "SENDER")
    async with roaming.charger("CP-PULL") as cp, emsp.client() as http:
        await status(cp, 1, "Available")
        first = await http.get(url, params={"limit": 1, "date_from": "2000-01-01T00:00:00"})
        second = await http.get(first.headers["link"].split(";")[0].strip("<>"))
        everything = await http.get(url)
        one = await http.get(f"{url}/LOC-A")
        evse = await http.get(f"{url}/LOC-A/CP-PULL*1")
        connector = await http.get(f"{url}/LOC-A/CP-PULL*1/1")
        private = await http.get(f"{url}/LOC-PRIVATE")
        future = await http.get(url, params={"date_from": "2999-01-01T00:00:00Z"})
    assert (first.headers["x-total-count"], first.headers["x-limit"]) == ("2", "100")
    assert "date_from=2000-01-01T00%3A00%3A00" in first.headers["link"]
    assert [loc["id"] for loc in first.json()["data"]] == ["LOC-A"]
    assert [loc["id"] for loc in second.json()["data"]] == ["LOC-B"]
    assert "link" not in second.headers
    assert [loc["id"] for loc in everything.json()["data"]] == ["LOC-A", "LOC-B"]
    assert one.json()["data"]["evses"][0]["uid"] == "CP-PULL*1"
    assert evse.json()["data"]["status"] == "AVAILABLE"
    assert connector.json()["data"]["id"] == "1"
    assert (private.status_code, private.json()["status_code"]) == (404, 2003)
    assert future.json()["data"] == []
    assert (one.headers["ocpi-from-party-id"], one.headers["ocpi-to-party-id"]) == ("CSM", "EMS")


async def test_explicit_choice_includes_a_private_location(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """{locationIds: [...]}: exactly those, a private one included (sent with its flags)."""
    await add_location(roaming, "LOC-A")
    await add_location(roaming, "LOC-PRIVATE", publish=False)
    await registered_emsp(roaming, emsp)
    await publish(roaming, {"locationIds": ["LOC-PRIVATE"]})
    async with emsp.client() as http:
        found = (await http.get(emsp.endpoint("locations", "SENDER"))).json()["data"]
    assert [(loc["id"], loc["publish"]) for loc in found] == [("LOC-PRIVATE", False)]


async def test_locations_are_pushed_and_statuses_patched(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """Registration and a choice PUT the location; a StatusNotification is PATCHed to the
    EVSE within seconds, with exactly the fields of the spec's status PATCH example."""
    await add_location(roaming, "LOC-1", "CP-PUSH")
    async with roaming.charger("CP-PUSH") as cp:
        await status(cp, 1, "Available")
        await registered_emsp(roaming, emsp)
        await publish(roaming, {"all": True})
        await emsp.until(lambda: "LOC-1" in emsp.locations)
        assert emsp.locations["LOC-1"]["evses"][0]["status"] == "AVAILABLE"
        await status(cp, 1, "Charging")
        await emsp.until(lambda: bool(emsp.of("PATCH", "/ocpi/2.2.1/locations/")))
    patch = emsp.of("PATCH", "/ocpi/2.2.1/locations/")[0]
    assert patch.path == "/ocpi/2.2.1/locations/XX/CSM/LOC-1/CP-PUSH*1"
    assert set(patch.body) == set(json.loads(PATCH_EXAMPLE.read_text()))
    assert patch.body["status"] == "CHARGING"
    assert patch.headers["ocpi-to-party-id"] == "EMS"
    assert emsp.locations["LOC-1"]["evses"][0]["status"] == "CHARGING"
    assert emsp.invalid == []


async def test_a_location_starts_empty_and_is_filled_later(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A location given with no chargers has no EVSEs; adding a charger PUTs its EVSEs;
    taking it away sends them REMOVED; withdrawing the location REMOVES all."""
    await add_location(roaming, "LOC-1", "CP-ONE", "CP-TWO")
    async with roaming.charger("CP-ONE") as one, roaming.charger("CP-TWO") as two:
        await status(one, 1, "Available")
        await status(two, 1, "Available")
        await registered_emsp(roaming, emsp)
        async with roaming.api() as api:
            await api.put("/partners/emsp/locations/LOC-1", json={"chargePointIds": []})
            await emsp.until(lambda: "LOC-1" in emsp.locations)
            assert "evses" not in emsp.locations["LOC-1"]
            await api.put("/partners/emsp/locations/LOC-1", json={"chargePointIds": ["CP-ONE"]})
            await emsp.until(lambda: len(emsp.locations["LOC-1"].get("evses", [])) == 1)
            await api.put("/partners/emsp/locations/LOC-1", json={"chargePointIds": ["CP-TWO"]})
            await emsp.until(
                lambda: (
                    {e["uid"]: e["status"] for e in emsp.locations["LOC-1"]["evses"]}
                    == {"CP-TWO*1": "AVAILABLE", "CP-ONE*1": "REMOVED"}
                )
            )
            shown = (await api.get("/partners/emsp/locations")).json()
            assert shown == {
                "all": False,
                "locations": [{"locationId": "LOC-1", "chargePointIds": ["CP-TWO"]}],
            }
            assert (await api.delete("/partners/emsp/locations/LOC-1")).status_code == 204
        await emsp.until(
            lambda: {e["status"] for e in emsp.locations["LOC-1"]["evses"]} == {"REMOVED"}
        )
    assert emsp.invalid == []


async def test_status_of_an_evse_the_partner_lacks_is_sent_as_a_put(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A connector's first status is a new EVSE for the partner: the location is PUT, not
    PATCHed (transport_and_format §PATCH: a PATCH needs the object)."""
    await add_location(roaming, "LOC-1", "CP-NEW")
    await registered_emsp(roaming, emsp)
    await publish(roaming, {"all": True})
    await emsp.until(lambda: "LOC-1" in emsp.locations)
    async with roaming.charger("CP-NEW") as cp:
        await status(cp, 2, "Faulted")
        await emsp.until(lambda: bool(emsp.locations["LOC-1"].get("evses")))
    assert emsp.locations["LOC-1"]["evses"][0]["status"] == "OUTOFORDER"
    assert emsp.of("PATCH", "/ocpi/2.2.1/locations/") == []


async def test_partner_without_locations_selection_gets_nothing(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A registered partner that was given no locations sees none and is sent none."""
    await add_location(roaming, "LOC-1")
    await registered_emsp(roaming, emsp)
    async with emsp.client() as http:
        answer = await http.get(emsp.endpoint("locations", "SENDER"))
    assert answer.json()["data"] == []
    assert answer.headers["x-total-count"] == "0"
    assert emsp.of("PUT", "/ocpi/2.2.1/locations/") == []


async def test_bad_pagination_parameters_are_2001(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """A limit that is no number or a date_from that is no OCPI DateTime: HTTP 400, 2001."""
    await registered_emsp(roaming, emsp)
    async with emsp.client() as http:
        for params in ({"limit": "many"}, {"date_from": "yesterday"}, {"offset": "-1"}):
            answer = await http.get(emsp.endpoint("locations", "SENDER"), params=params)
            assert (answer.status_code, answer.json()["status_code"]) == (400, 2001), params
