"""The dashboard's partners section over HTTP: the list and one partner's page, with its
handshake, endpoints, what it gets and its push backlog; read-only for every role."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.api.test_dashboard import add_account, logged_in, root_of
from tests.ocpi.test_locations import add_location, publish
from tests.ocpi_partner import FakeEmsp, registered_emsp
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres


def text_of(html: str) -> str:
    """The page's text without tags or repeated blanks, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_partners_list_and_page_show_handshake_endpoints_and_backlog(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A viewer sees a registered partner with its endpoints and published location, and a
    push the partner turned away waiting in its backlog with the error it got."""
    await add_account(roaming, "vic", "viewer")
    await add_location(roaming, "LOC-D", "CP-D1")
    await registered_emsp(roaming, emsp)
    async with roaming.api() as api:
        assert (await api.put("/partners/p-new", json={**PARTNER, "name": "Later"})).is_success
    emsp.down = True
    await publish(roaming, {"locationIds": ["LOC-D"]})
    await emsp.until(lambda: emsp.turned_away > 0)
    async with logged_in(roaming, "vic") as client:
        listing = await client.get("/partners")
        page = await client.get("/partners/emsp")
        missing = await client.get("/partners/nobody")
    assert listing.status_code == page.status_code == 200
    assert missing.status_code == 404
    rows = text_of(listing.text)
    assert re.search(r"emsp Test eMSP NL\*EMS EMSP registered \d+ ", rows), rows
    assert "p-new Later NL*EMS EMSP pending 0 0 locations 0 0" in rows
    shown = text_of(page.text)
    assert "Handshake registered since" in shown
    assert "locations SENDER " in shown or "locations RECEIVER " in shown
    assert "LOC-D: every charger" in shown
    assert re.search(r"Push backlog: [1-9]\d* waiting, 0 refused", shown), shown
    backlog = shown.split("Push backlog", 1)[1]
    assert "LOC-D" in backlog
    assert "503" in backlog, backlog


async def test_partners_pages_say_when_ocpi_is_off(csms: RunningCsms) -> None:
    """Without the OCPI listener the list is empty and says why; the nav links to it."""
    await add_account(csms, "ops", "operator")
    async with logged_in(csms, "ops") as client:
        listing = await client.get("/partners")
        fleet = await client.get("/")
    assert listing.status_code == 200
    assert 'id="ocpi-off"' in listing.text
    assert "No partners yet" in listing.text
    assert 'href="/partners"' in fleet.text
    assert '<a href="/partners" aria-current="page">' in listing.text


async def test_partners_pages_need_a_login(roaming: RunningCsms) -> None:
    """Without a session the partners pages redirect to the login form."""
    async with httpx.AsyncClient(base_url=root_of(roaming)) as client:
        answer = await client.get("/partners/emsp")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/partners/emsp"


PARTNER = {"countryCode": "NL", "partyId": "EMS", "roles": ["EMSP"]}
