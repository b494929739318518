"""Tariffs as Sender (OCPI 2.2.1 mod_tariffs): pull with pagination, pushes from the outbox
(PUT on change, DELETE on removal, everything to a partner that registers later), the
connectors' tariff_ids, and Sessions and CDRs naming the tariff they were priced with."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from csms.events.models_ocpi import Tariff
from tests.ocpi.test_locations import add_location, publish, status
from tests.ocpi.test_sessions import charge, push_token
from tests.ocpi_partner import FakeEmsp, registered_emsp, running_emsp
from tests.sessions import RFID
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres

FIXTURES = Path(__file__).parent.parent / "events" / "fixtures" / "ocpi"
ENERGY: dict[str, Any] = {
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1}]}
    ]
}


def spec_example(name: str) -> dict[str, Any]:
    """One of the spec's tariff examples, as csms's API takes it (our party, no times)."""
    example: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    for key in ("country_code", "party_id", "id", "last_updated"):
        example.pop(key)
    return example


async def put_tariff(csms: RunningCsms, tariff_id: str, body: dict[str, Any]) -> None:
    async with csms.api() as api:
        answer = await api.put(f"/tariffs/{tariff_id}", json=body)
    assert answer.status_code in (200, 201), answer.text


async def test_tariffs_are_listed_paginated_and_the_spec_example_round_trips(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """GET tariffs lists every tariff oldest first, 2 a page with a Link to the next; the
    spec's complex example comes back as it went in (with our party and its id), valid
    under the strict model; the version details list tariffs as SENDER."""
    await registered_emsp(roaming, emsp)
    example = spec_example("tariff_4_complex.json")
    await put_tariff(roaming, "14", example)
    await put_tariff(roaming, "KWH", ENERGY)
    await put_tariff(roaming, "FREE", spec_example("tariff_5_free_of_charge.json"))
    url = emsp.endpoint("tariffs", "SENDER")
    async with emsp.client() as http:
        first = await http.get(url, params={"limit": 2})
        second = await http.get(first.headers["link"].split(";")[0].strip("<>"))
        late = await http.get(url, params={"date_from": first.json()["data"][1]["last_updated"]})
    assert first.headers["x-total-count"] == "3"
    ids = [t["id"] for t in first.json()["data"] + second.json()["data"]]
    assert ids == ["14", "KWH", "FREE"]
    assert "link" not in second.headers
    assert [t["id"] for t in late.json()["data"]][-1] == "FREE"
    shown = first.json()["data"][0]
    Tariff.model_validate_json(json.dumps(shown))
    assert {k: v for k, v in shown.items() if k not in ("last_updated",)} == {
        **example,
        "country_code": "XX",
        "party_id": "CSM",
        "id": "14",
    }
    assert "tariffs:SENDER" in emsp.csms_endpoints


async def test_every_spec_tariff_example_round_trips(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """All 18 mod_tariffs examples put through the API come back from GET tariffs as they
    went in (our party, their id), each valid under the strict Tariff model."""
    await registered_emsp(roaming, emsp)
    names = sorted(path.name for path in FIXTURES.glob("tariff_*.json"))
    assert len(names) == 18
    sent = {}
    for name in names:
        tariff_id = name.split("_")[1]
        sent[tariff_id] = spec_example(name)
        await put_tariff(roaming, tariff_id, sent[tariff_id])
    shown: dict[str, dict[str, Any]] = {}
    next_url: str | None = emsp.endpoint("tariffs", "SENDER")
    async with emsp.client() as http:
        while next_url is not None:
            page = await http.get(next_url, params={"limit": 5} if "?" not in next_url else None)
            shown |= {t["id"]: t for t in page.json()["data"]}
            link = page.headers.get("link")
            next_url = None if link is None else link.split(";")[0].strip("<>")
    assert set(shown) == set(sent)
    for tariff_id, tariff in shown.items():
        Tariff.model_validate_json(json.dumps(tariff))
        kept = {k: v for k, v in tariff.items() if k != "last_updated"}
        assert kept == {**sent[tariff_id], "country_code": "XX", "party_id": "CSM", "id": tariff_id}


async def test_tariff_changes_are_pushed_and_a_late_partner_gets_them_all(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A new tariff is PUT to the partner's Tariffs receiver, a change PUT again, a
    deletion DELETEd; a partner registering later gets every current tariff."""
    await registered_emsp(roaming, emsp)
    await put_tariff(roaming, "KWH", ENERGY)
    await emsp.until(lambda: "KWH" in emsp.tariffs)
    changed = {**ENERGY, "tariff_alt_url": "https://csms.example/tariffs/kwh"}
    await put_tariff(roaming, "KWH", changed)
    await emsp.until(lambda: "tariff_alt_url" in emsp.tariffs.get("KWH", {}))
    await put_tariff(roaming, "OLD", ENERGY)
    await emsp.until(lambda: "OLD" in emsp.tariffs)
    async with roaming.api() as api:
        assert (await api.delete("/tariffs/OLD")).status_code == 204
    await emsp.until(lambda: "OLD" not in emsp.tariffs)
    assert emsp.of("PUT", "/ocpi/2.2.1/tariffs/XX/CSM/KWH")
    assert [r.path for r in emsp.of("DELETE", "/ocpi/2.2.1/tariffs/")] == [
        "/ocpi/2.2.1/tariffs/XX/CSM/OLD"
    ]
    async with running_emsp() as late:
        await registered_emsp(roaming, late, partner_id="late")
        await late.until(lambda: set(late.tariffs) == {"KWH"})
        assert late.tariffs["KWH"]["tariff_alt_url"] == "https://csms.example/tariffs/kwh"
        # Another resync (a location chosen for it) sends what differs, and no tariff: it
        # queues tariffs before locations, so a repeat would arrive before the Location.
        await add_location(roaming, "LOC-L", publish=False)
        await publish(roaming, {"locationIds": ["LOC-L"]}, partner_id="late")
        await late.until(lambda: "LOC-L" in late.locations)
        assert len(late.of("PUT", "/ocpi/2.2.1/tariffs/")) == 1
        assert not late.invalid
    assert not emsp.invalid


async def test_connectors_name_their_tariff_and_cdrs_the_one_used(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """Connectors carry tariff_ids (the EVSE's assignment before the location's); the
    partner's Session and CDR name the tariff the session was priced with."""

    def pushed(uid: str) -> list[str] | None:
        """The tariff_ids of an EVSE's connector in the Location the partner holds."""
        held = emsp.locations.get("LOC-T", {}).get("evses", [])
        found = [e["connectors"][0].get("tariff_ids") for e in held if e["uid"] == uid]
        return found[0] if found else None

    await add_location(roaming, "LOC-T", "CP-T1", "CP-T2")
    await put_tariff(roaming, "SITE", ENERGY)
    await put_tariff(roaming, "FAST", {**ENERGY, "type": "PROFILE_FAST"})
    async with roaming.api() as api:
        await api.put("/tariff-assignments/locations/LOC-T", json={"tariffId": "SITE"})
        await api.put("/tariff-assignments/evses/CP-T2/0", json={"tariffId": "FAST"})
    async with roaming.charger("CP-T1") as one, roaming.charger("CP-T2") as two:
        await status(one, 1, "Available")
        await status(two, 1, "Available")
    await registered_emsp(roaming, emsp)
    await publish(roaming, {"all": True})
    await push_token(emsp, RFID, whitelist="ALWAYS")
    async with emsp.client() as http:
        location = (await http.get(f"{emsp.endpoint('locations', 'SENDER')}/LOC-T")).json()
    await emsp.until(lambda: pushed("CP-T1*1") == ["SITE"])
    named = {
        evse["uid"]: connector.get("tariff_ids")
        for evse in location["data"]["evses"]
        for connector in evse["connectors"]
    }
    assert named == {"CP-T1*1": ["SITE"], "CP-T2*1": ["FAST"]}
    # A new assignment: named at once, and the Location's last_updated moves with it, so
    # a pull with date_from finds it.
    before = location["data"]["last_updated"]
    async with roaming.api() as api:
        await api.put("/tariff-assignments/evses/CP-T1/1", json={"tariffId": "FAST"})
    async with emsp.client() as http:
        changed = await http.get(emsp.endpoint("locations", "SENDER"), params={"date_from": before})
    (again,) = changed.json()["data"]
    assert datetime.fromisoformat(again["last_updated"]) > datetime.fromisoformat(before)
    evse = next(e for e in again["evses"] if e["uid"] == "CP-T1*1")
    assert evse["connectors"][0]["tariff_ids"] == ["FAST"]

    # The partner holding the location gets it again at once (not at the next periodic
    # resync, 300 s away): the assignment woke the resync.
    await emsp.until(lambda: pushed("CP-T1*1") == ["FAST"])
    tx = await charge(roaming, "CP-T2", RFID)
    await emsp.until(lambda: len(emsp.cdrs) == 1)
    cdr = emsp.cdrs[0]
    assert [t["id"] for t in cdr["tariffs"]] == ["FAST"]
    assert {p["tariff_id"] for p in cdr["charging_periods"]} == {"FAST"}
    assert cdr["total_cost"]["excl_vat"] == pytest.approx(7.5 * 0.30)
    session = emsp.sessions[str(tx)]
    assert {p["tariff_id"] for p in session["charging_periods"]} == {"FAST"}
    assert not emsp.invalid
