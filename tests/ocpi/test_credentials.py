"""The OCPI listener's configuration modules: versions, and the credentials handshake both ways."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.ocpi_partner import COUNTRY, PARTY, FakeEmsp, ocpi_settings, registered_emsp
from tests.support import MS, RunningCsms, running_csms, settings_for

pytestmark = pytest.mark.postgres


def _auth(token: str, *, encoded: bool = True) -> dict[str, str]:
    value = base64.b64encode(token.encode()).decode() if encoded else token
    return {"Authorization": f"Token {value}"}


async def _partner(
    csms: RunningCsms, partner_id: str = "emsp", **more: object
) -> dict[str, object]:
    async with csms.api() as api:
        answer = await api.put(
            f"/partners/{partner_id}",
            json={"countryCode": COUNTRY, "partyId": PARTY, "roles": ["EMSP"], **more},
        )
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_versions_and_details_answer_in_the_envelope(roaming: RunningCsms) -> None:
    """With token A: versions lists 2.2.1, its details list our modules and roles, in the
    OCPI envelope, with X-Request-ID and X-Correlation-ID echoed."""
    token_a = str((await _partner(roaming))["tokenA"])
    ids = {"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"}
    async with httpx.AsyncClient(headers=_auth(token_a) | ids, timeout=10_000 * MS) as http:
        versions = await http.get(roaming.ocpi_versions_url)
        details = await http.get(versions.json()["data"][0]["url"])
    body = versions.json()
    assert (versions.status_code, body["status_code"]) == (200, 1000)
    assert body["timestamp"].endswith("Z")
    assert body["data"] == [{"version": "2.2.1", "url": roaming.ocpi_versions_url[:-9] + "/2.2.1"}]
    assert (versions.headers["x-request-id"], versions.headers["x-correlation-id"]) == (
        "req-1",
        "corr-1",
    )
    modules = {(e["identifier"], e["role"]) for e in details.json()["data"]["endpoints"]}
    assert modules == {
        ("credentials", "SENDER"),
        ("locations", "SENDER"),
        ("sessions", "SENDER"),
        ("cdrs", "SENDER"),
        ("tariffs", "SENDER"),
        ("tokens", "RECEIVER"),
        ("commands", "RECEIVER"),
        ("hubclientinfo", "RECEIVER"),
    }


async def test_unknown_or_missing_tokens_get_401(roaming: RunningCsms) -> None:
    """No Authorization header, an unknown token, or token A on a functional module: 401
    (transport_and_format §Authorization header), still in the envelope."""
    token_a = str((await _partner(roaming))["tokenA"])
    async with httpx.AsyncClient(timeout=10_000 * MS) as http:
        missing = await http.get(roaming.ocpi_versions_url)
        unknown = await http.get(roaming.ocpi_versions_url, headers=_auth("nope"))
        locations_url = roaming.ocpi_versions_url.replace("versions", "2.2.1/locations")
        with_a = await http.get(locations_url, headers=_auth(token_a))
    for answer in (missing, unknown, with_a):
        assert answer.status_code == 401
        assert answer.json()["status_code"] == 2000


async def test_partner_registers_with_csms(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """Token A -> POST credentials: csms fetches the eMSP's endpoints with token B, answers
    token C; token A is then dead, C works, and the partner shows registered."""
    created = await _partner(roaming)
    assert created["state"] == "pending"
    assert created["versionsUrlForPartner"] == roaming.ocpi_versions_url
    await emsp.register_with(roaming.ocpi_versions_url, str(created["tokenA"]))
    assert emsp.token_for_csms is not None
    assert emsp.of("GET", "/ocpi/versions"), "csms fetched the eMSP's versions with token B"
    async with roaming.api() as api:
        shown = (await api.get("/partners/emsp")).json()
    assert shown["state"] == "registered"
    assert "tokenA" not in shown or shown["tokenA"] is None
    assert {e["identifier"] for e in shown["endpoints"]} >= {"locations", "sessions", "cdrs"}
    assert shown["parties"] == [
        {"role": "EMSP", "countryCode": "NL", "partyId": "EMS", "name": "Test eMSP"}
    ]
    async with httpx.AsyncClient(timeout=10_000 * MS) as http:
        with_a = await http.get(roaming.ocpi_versions_url, headers=_auth(str(created["tokenA"])))
        with_c = await http.get(roaming.ocpi_versions_url, headers=_auth(emsp.token_for_csms))
    assert (with_a.status_code, with_c.status_code) == (401, 200)


async def test_registering_twice_is_405_and_put_updates(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """credentials §POST: 405 once registered; PUT gives a new token C, the old one dies;
    DELETE unregisters and the token stops working."""
    await registered_emsp(roaming, emsp)
    old = emsp.token_for_csms
    assert old is not None
    credentials_url = emsp.endpoint("credentials", "SENDER")
    emsp.accepted.add("emsp-renewed")
    async with emsp.client() as http:
        again = await http.post(credentials_url, json=emsp.credentials("emsp-other"))
        updated = await http.put(credentials_url, json=emsp.credentials("emsp-renewed"))
    assert again.status_code == 405
    assert updated.json()["status_code"] == 1000
    new = updated.json()["data"]["token"]
    assert new != old
    async with emsp.client(old) as http:
        assert (await http.get(roaming.ocpi_versions_url)).status_code == 401
    async with emsp.client(new) as http:
        gone = await http.delete(credentials_url)
        after = await http.get(roaming.ocpi_versions_url)
    assert gone.json()["status_code"] == 1000
    assert after.status_code == 401
    async with roaming.api() as api:
        assert (await api.get("/partners/emsp")).json()["state"] == "unregistered"


async def test_csms_registers_with_the_partner(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """versionsUrl + tokenA: csms fetches the eMSP's endpoints, POSTs our credentials with
    a token B the eMSP can use at once, and keeps the eMSP's token C."""
    emsp.accepted.add("token-a-from-emsp")
    shown = await _partner(roaming, versionsUrl=emsp.versions_url, tokenA="token-a-from-emsp")
    assert shown["state"] == "registered"
    assert shown.get("tokenA") is None
    posted = emsp.of("POST", "/ocpi/2.2.1/credentials")
    assert len(posted) == 1
    assert posted[0].body["url"] == roaming.ocpi_versions_url
    # The eMSP fetched our endpoints with token B during the POST.
    assert emsp.endpoint("locations", "SENDER").endswith("/ocpi/2.2.1/locations")
    assert emsp.invalid == []


async def test_unencoded_token_only_for_partners_configured_so(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """A token sent without Base64 (OCPI 2.1.1 style) is refused, unless the partner is set
    up with unencodedToken."""
    token_a = str((await _partner(roaming))["tokenA"])
    async with httpx.AsyncClient(timeout=10_000 * MS) as http:
        refused = await http.get(roaming.ocpi_versions_url, headers=_auth(token_a, encoded=False))
        await _partner(roaming, unencodedToken=True)
        accepted = await http.get(roaming.ocpi_versions_url, headers=_auth(token_a, encoded=False))
        encoded = await http.get(roaming.ocpi_versions_url, headers=_auth(token_a))
    assert (refused.status_code, accepted.status_code, encoded.status_code) == (401, 200, 200)


async def test_private_versions_url_is_refused_without_allow_private_targets(
    database_url: str, emsp: FakeEmsp
) -> None:
    """SSRF rules: a loopback versions URL is 422 unless ocpi.allow_private_targets; nothing
    is sent to it."""
    settings = settings_for(database_url, ocpi=ocpi_settings(allow_private_targets=False))
    async with running_csms(settings) as csms, csms.api() as api:
        answer = await api.put(
            "/partners/emsp",
            json={
                "countryCode": COUNTRY,
                "partyId": PARTY,
                "roles": ["EMSP"],
                "versionsUrl": emsp.versions_url,
                "tokenA": "token-a",
            },
        )
    assert answer.status_code == 422
    assert "private, loopback or link-local" in answer.json()["detail"]
    assert emsp.received == []


async def test_bad_bodies_get_clear_errors(roaming: RunningCsms) -> None:
    """Not JSON: HTTP 400 with 2001; a body over ocpi.max_body_bytes: 413; a Credentials
    object missing a field: 2001 naming it."""
    token_a = str((await _partner(roaming))["tokenA"])
    url = roaming.ocpi_versions_url.replace("versions", "2.2.1/credentials")
    async with httpx.AsyncClient(headers=_auth(token_a), timeout=10_000 * MS) as http:
        not_json = await http.post(url, content=b"{nope")
        huge = await http.post(url, content=b"[" + b"1," * 600_000 + b"1]")
        missing = await http.post(url, json={"token": "x", "url": "https://e.example/v"})
    assert (not_json.status_code, not_json.json()["status_code"]) == (400, 2001)
    assert huge.status_code == 413
    assert missing.json()["status_code"] == 2001
    assert "roles" in missing.json()["status_message"]
