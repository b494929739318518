"""Hub routing (OCPI 2.2.1 transport_and_format §Message Routing, mod_hub_client_info): a
hub partner relaying for two eMSPs. Tokens belong to the party that pushed them through
the hub, Sessions and CDRs go to the hub addressed to the token's owner, and each party
asking through the hub sees only its own data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.ocpi.test_locations import add_location
from tests.ocpi.test_sessions import charge
from tests.ocpi_partner import FakeEmsp, registered_emsp, running_emsp, token_object
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres

A, B = ("DE", "AAA"), ("FR", "BBB")


@pytest.fixture
async def hub() -> AsyncIterator[FakeEmsp]:
    """The test partner acting as a hub: NL/HUB, role HUB."""
    async with running_emsp() as partner:
        partner.country, partner.party, partner.role = "NL", "HUB", "HUB"
        yield partner


async def registered_hub(csms: RunningCsms, hub: FakeEmsp) -> None:
    async with csms.api() as api:
        created = await api.put(
            "/partners/hub",
            json={"countryCode": "NL", "partyId": "HUB", "roles": ["HUB"], "name": "Test hub"},
        )
    assert created.status_code == 201, created.text
    await hub.register_with(csms.ocpi_versions_url, created.json()["tokenA"])


def token_url(hub: FakeEmsp, party: tuple[str, str], uid: str) -> str:
    return f"{hub.endpoint('tokens', 'RECEIVER')}/{party[0]}/{party[1]}/{uid}"


async def push_for(hub: FakeEmsp, party: tuple[str, str], uid: str, **more: Any) -> int:
    async with hub.client(on_behalf_of=party) as http:
        answer = await http.put(
            token_url(hub, party, uid), json=token_object(uid, party=party, **more)
        )
    return answer.status_code


def addressed(request: Any) -> tuple[str, str]:
    return (request.headers["ocpi-to-country-code"], request.headers["ocpi-to-party-id"])


async def test_a_hub_relays_for_two_emsps(roaming: RunningCsms, hub: FakeEmsp) -> None:
    """Tokens pushed through the hub are their originating party's; a party cannot push
    or read another's; real-time authorization, Sessions and CDRs go to the hub with
    OCPI-to naming the token's owner; GET sessions and cdrs through the hub show a party
    its own only, and the hub itself all it relays."""
    await add_location(roaming, "LOC-H", "CP-H1")
    await registered_hub(roaming, hub)
    assert await push_for(hub, A, "AAAA0001", whitelist="ALLOWED") == 201
    assert await push_for(hub, B, "BBBB0002", whitelist="ALWAYS") == 201
    async with hub.client(on_behalf_of=A) as as_a:
        # A speaking, B's URL: not A's token to push or read.
        stolen = await as_a.put(
            token_url(hub, B, "BBBB0003"), json=token_object("BBBB0003", party=B)
        )
        peek = await as_a.get(token_url(hub, B, "BBBB0002"))
        own = await as_a.get(token_url(hub, A, "AAAA0001"))
    assert (stolen.status_code, peek.status_code, own.status_code) == (404, 404, 200)

    tx_a = await charge(roaming, "CP-H1", "AAAA0001")
    tx_b = await charge(roaming, "CP-H1", "BBBB0002")
    await hub.until(lambda: len(hub.cdrs) == 2)
    (asked,) = hub.of("POST", "/ocpi/2.2.1/tokens/AAAA0001/authorize")
    assert addressed(asked) == A
    for tx, party in ((tx_a, A), (tx_b, B)):
        puts = hub.of("PUT", f"/ocpi/2.2.1/sessions/XX/CSM/{tx}")
        assert puts
        assert {addressed(r) for r in puts} == {party}
        assert {r.headers["ocpi-from-party-id"] for r in puts} == {"CSM"}
    cdr_posts = hub.of("POST", "/ocpi/2.2.1/cdrs")
    assert sorted(addressed(r) for r in cdr_posts) == sorted([A, B])
    assert {c["cdr_token"]["party_id"] for c in hub.cdrs} == {"AAA", "BBB"}

    params = {"date_from": "2000-01-01T00:00:00Z"}
    seen: dict[Any, set[str]] = {}
    for party in (A, B, None):
        async with hub.client(on_behalf_of=party) as http:
            sessions = await http.get(hub.endpoint("sessions", "SENDER"), params=params)
            cdrs = await http.get(hub.endpoint("cdrs", "SENDER"))
        seen[party] = {s["id"] for s in sessions.json()["data"]} | {
            f"cdr:{c['id']}" for c in cdrs.json()["data"]
        }
        if party is not None:
            assert addressed(sessions) == party
    assert seen[A] == {str(tx_a), f"cdr:{tx_a}"}
    assert seen[B] == {str(tx_b), f"cdr:{tx_b}"}
    assert seen[None] == seen[A] | seen[B]

    # The operator's credit of A's CDR goes to A through the hub, and A sees it.
    async with roaming.api() as api:
        assert (await api.post(f"/partners/hub/cdrs/{tx_a}/credit")).status_code == 201
    await hub.until(lambda: len(hub.cdrs) == 3)
    assert addressed(hub.of("POST", "/ocpi/2.2.1/cdrs")[-1]) == A
    async with hub.client(on_behalf_of=A) as as_a, hub.client(on_behalf_of=B) as as_b:
        of_a = (await as_a.get(hub.endpoint("cdrs", "SENDER"))).json()["data"]
        of_b = (await as_b.get(hub.endpoint("cdrs", "SENDER"))).json()["data"]
    assert [c["id"] for c in of_a] == [str(tx_a), f"{tx_a}-C"]
    assert [c["id"] for c in of_b] == [str(tx_b)]
    assert not hub.invalid


async def test_stop_session_through_the_hub_is_for_the_token_owner_only(
    roaming: RunningCsms, hub: FakeEmsp
) -> None:
    """STOP_SESSION through the hub: another client's session is UNKNOWN_SESSION."""
    await add_location(roaming, "LOC-H", "CP-H2")
    await registered_hub(roaming, hub)
    await push_for(hub, A, "AAAA0001")
    async with roaming.charger("CP-H2") as cp:
        await cp.call("Authorize", {"idTag": "AAAA0001"})
        started = await cp.call(
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "AAAA0001",
                "meterStart": 0,
                "timestamp": "2026-03-01T10:00:00Z",
            },
        )
        url = f"{hub.endpoint('commands', 'RECEIVER')}/STOP_SESSION"
        body = {
            "response_url": f"{hub.url}/ocpi/2.2.1/commands/STOP_SESSION/x",
            "session_id": str(started["transactionId"]),
        }
        async with hub.client(on_behalf_of=B) as http:
            answer = await http.post(url, json=body)
    assert answer.json()["data"]["result"] == "UNKNOWN_SESSION"


async def test_hub_client_info_and_foreign_parties(
    roaming: RunningCsms, hub: FakeEmsp, emsp: FakeEmsp
) -> None:
    """The hub reports its clients (PUT hubclientinfo, read back with GET, no routing
    headers); a client it reported SUSPENDED is refused (2001); a direct eMSP naming
    another party in OCPI-from is refused (2001), and it may not report clients (403)."""
    await registered_hub(roaming, hub)
    await registered_emsp(roaming, emsp)
    assert "hubclientinfo:RECEIVER" in hub.csms_endpoints
    url = f"{hub.endpoint('hubclientinfo', 'RECEIVER')}/FR/BBB"
    info = {
        "party_id": "BBB",
        "country_code": "FR",
        "role": "EMSP",
        "status": "SUSPENDED",
        "last_updated": "2026-02-01T00:00:00Z",
    }
    async with hub.client() as http:
        put = await http.put(url, json=info)
        got = await http.get(url)
    assert put.json()["status_code"] == 1000, put.text
    assert got.json()["data"] == info
    async with roaming.api() as api:
        shown = (await api.get("/partners/hub")).json()
    assert [(c["countryCode"], c["partyId"], c["status"]) for c in shown["hubClients"]] == [
        ("FR", "BBB", "SUSPENDED")
    ]
    assert "ocpi-to-party-id" not in got.headers
    assert await push_for(hub, A, "AAAA0001") == 201
    async with hub.client(on_behalf_of=B) as http:
        suspended = await http.put(
            token_url(hub, B, "BBBB0002"), json=token_object("BBBB0002", party=B)
        )
    assert suspended.json()["status_code"] == 2001
    assert "SUSPENDED" in suspended.json()["status_message"]
    async with emsp.client(on_behalf_of=A) as http:
        impostor = await http.get(
            f"{emsp.endpoint('cdrs', 'SENDER')}", params={"date_from": "2000-01-01T00:00:00Z"}
        )
        reporting = await http.put(
            f"{emsp.endpoint('hubclientinfo', 'RECEIVER')}/FR/BBB", json=info
        )
    assert impostor.json()["status_code"] == 2001
    assert reporting.status_code == 403
