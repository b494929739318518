"""The partners API: onboarding input, what GET shows (never a token), removal, and OCPI off."""

from __future__ import annotations

import pytest

from tests.ocpi_partner import FakeEmsp, registered_emsp
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres

EMSP = {"countryCode": "NL", "partyId": "EMS", "roles": ["EMSP"], "name": "Test eMSP"}


async def test_partner_input_is_checked(roaming: RunningCsms) -> None:
    """A versionsUrl without tokenA, an unknown role or a bad party id: 422 naming it."""
    async with roaming.api() as api:
        half = await api.put("/partners/p1", json={**EMSP, "versionsUrl": "https://e.example/v"})
        role = await api.put("/partners/p1", json={**EMSP, "roles": ["BANK"]})
        party = await api.put("/partners/p1", json={**EMSP, "partyId": "TOOLONG"})
        missing = await api.get("/partners/nobody")
    assert half.status_code == role.status_code == party.status_code == 422
    assert "versionsUrl and tokenA go together" in half.json()["detail"]
    assert "roles" in role.json()["detail"]
    assert "partyId" in party.json()["detail"]
    assert missing.status_code == 404


async def test_token_a_is_shown_once_and_partners_are_listed(roaming: RunningCsms) -> None:
    """The creating PUT answers tokenA and our versions URL; later answers never do."""
    async with roaming.api() as api:
        created = (await api.put("/partners/p1", json=EMSP)).json()
        updated = await api.put("/partners/p1", json={**EMSP, "name": "Renamed"})
        listed = (await api.get("/partners")).json()
    assert created["tokenA"]
    assert created["versionsUrlForPartner"] == roaming.ocpi_versions_url
    assert updated.status_code == 200
    assert updated.json()["tokenA"] is None
    assert listed["total"] == 1
    assert listed["items"][0]["name"] == "Renamed"
    assert listed["items"][0]["tokenA"] is None
    assert "outgoingToken" not in listed["items"][0]


async def test_removing_a_registered_partner_unregisters_it(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """DELETE sends the partner credentials DELETE, then forgets it; its token stops working."""
    await registered_emsp(roaming, emsp)
    async with roaming.api() as api:
        assert (await api.delete("/partners/emsp")).status_code == 204
        assert (await api.get("/partners/emsp")).status_code == 404
        assert (await api.delete("/partners/emsp")).status_code == 404
    assert emsp.of("DELETE", "/ocpi/2.2.1/credentials")
    async with emsp.client() as http:
        assert (await http.get(roaming.ocpi_versions_url)).status_code == 401


async def test_locations_must_exist(roaming: RunningCsms) -> None:
    """Choosing a location csms does not have is 422; an unknown partner is 404."""
    async with roaming.api() as api:
        await api.put("/partners/p1", json=EMSP)
        unknown = await api.put("/partners/p1/locations", json={"locationIds": ["NOPE"]})
        nobody = await api.put("/partners/p2/locations", json={"all": True})
    assert unknown.status_code == 422
    assert nobody.status_code == 404


async def test_partners_need_the_ocpi_listener(csms: RunningCsms) -> None:
    """With ocpi.port = 0 there is no OCPI listener: creating a partner is 409."""
    async with csms.api() as api:
        answer = await api.put("/partners/p1", json=EMSP)
    assert answer.status_code == 409
    assert "ocpi.port" in answer.json()["detail"]
