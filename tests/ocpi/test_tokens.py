"""Tokens as Receiver, and partners' tokens at chargers per their whitelist type."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.ocpi_partner import (
    FakeEmsp,
    ocpi_settings,
    registered_emsp,
    running_emsp,
    token_object,
)
from tests.support import MS, RunningCsms, running_csms, settings_for

pytestmark = pytest.mark.postgres

PATCH_EXAMPLE = (
    Path(__file__).parent.parent / "events" / "fixtures" / "ocpi" / "token_patch_example.json"
)


@pytest.fixture
async def quick(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms that gives an eMSP 1 s to authorize in real time (the charger's own call
    timeout in the tests is ten times that)."""
    settings = settings_for(database_url, ocpi=ocpi_settings(authorize_timeout=1_000 * MS))
    async with running_csms(settings) as running:
        yield running


def token_url(emsp: FakeEmsp, uid: str, *, country: str = "NL", party: str = "EMS") -> str:
    return f"{emsp.endpoint('tokens', 'RECEIVER')}/{country}/{party}/{uid}"


async def push_token(emsp: FakeEmsp, uid: str, **more: Any) -> None:
    async with emsp.client() as http:
        answer = await http.put(token_url(emsp, uid), json=token_object(uid, **more))
    assert answer.json()["status_code"] == 1000, answer.text


async def test_tokens_are_put_patched_and_read_back(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """PUT creates (201) then replaces (200); PATCH (the spec's invalidation example) changes
    only what it names; GET shows the token as csms holds it."""
    await registered_emsp(roaming, emsp)
    url = token_url(emsp, "0123ABCD")
    async with emsp.client() as http:
        created = await http.put(url, json=token_object("0123ABCD"))
        replaced = await http.put(url, json=token_object("0123ABCD", visual_number="V-1"))
        patched = await http.patch(url, json=json.loads(PATCH_EXAMPLE.read_text()))
        shown = await http.get(url, params={"type": "RFID"})
    assert (created.status_code, replaced.status_code) == (201, 200)
    assert patched.json()["status_code"] == 1000
    token = shown.json()["data"]
    assert (token["valid"], token["visual_number"]) == (False, "V-1")
    assert token["last_updated"] == "2019-06-19T02:11:11Z"


async def test_bad_tokens_get_clear_errors(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """An invalid field, a uid other than the URL's, a PATCH without last_updated: 2001
    naming it; another party's URL or an unknown token: 404."""
    await registered_emsp(roaming, emsp)
    url = token_url(emsp, "0123ABCD")
    async with emsp.client() as http:
        wrong = await http.put(url, json=token_object("0123ABCD", whitelist="SOMETIMES"))
        other_uid = await http.put(url, json=token_object("FFFF0000"))
        await http.put(url, json=token_object("0123ABCD"))
        no_time = await http.patch(url, json={"valid": False})
        foreign = await http.put(
            token_url(emsp, "0123ABCD", party="XYZ"), json=token_object("0123ABCD")
        )
        unknown = await http.get(token_url(emsp, "NOPE"))
    assert wrong.json()["status_code"] == 2001
    assert "whitelist" in wrong.json()["status_message"]
    assert other_uid.json()["status_code"] == 2001
    assert "uid" in other_uid.json()["status_message"]
    assert no_time.json()["status_code"] == 2001
    assert "last_updated" in no_time.json()["status_message"]
    assert foreign.status_code == 404
    assert unknown.status_code == 404


async def authorize(csms: RunningCsms, id_tag: str, *, charger: str = "CP-TOK") -> str:
    async with csms.charger(charger) as cp:
        answer = await cp.call("Authorize", {"idTag": id_tag})
    status: str = answer["idTagInfo"]["status"]
    return status


@pytest.mark.parametrize(
    ("whitelist", "answer", "down", "expected", "asked"),
    [
        ("ALWAYS", "BLOCKED", False, "Accepted", False),
        ("ALLOWED", "BLOCKED", False, "Blocked", True),
        ("ALLOWED", "ALLOWED", True, "Accepted", False),
        ("ALLOWED_OFFLINE", "NOT_ALLOWED", False, "Invalid", True),
        ("ALLOWED_OFFLINE", "ALLOWED", True, "Accepted", False),
        ("NEVER", "ALLOWED", False, "Accepted", True),
        ("NEVER", "ALLOWED", True, "Invalid", False),
        ("NEVER", None, False, "Invalid", True),
    ],
)
async def test_whitelist_types_at_the_charger(
    roaming: RunningCsms,
    emsp: FakeEmsp,
    whitelist: str,
    answer: str | None,
    down: bool,
    expected: str,
    asked: bool,
) -> None:
    """Authorize per mod_tokens §WhitelistType: ALWAYS from csms's copy; the others ask the
    eMSP, and when it is down ALLOWED/ALLOWED_OFFLINE fall back to the copy and NEVER
    refuses; an unknown token (404) is Invalid."""
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "0123ABCD", whitelist=whitelist)
    emsp.authorize_answer = answer
    emsp.down = down
    assert await authorize(roaming, "0123ABCD") == expected
    emsp.down = False
    calls = emsp.of("POST", "/ocpi/2.2.1/tokens/0123ABCD/authorize")
    assert bool(calls) is asked
    if asked:
        assert calls[0].body is None or calls[0].body == {
            "location_id": calls[0].body["location_id"]
        }


async def test_a_slow_emsp_cannot_hold_the_charger(quick: RunningCsms, emsp: FakeEmsp) -> None:
    """An eMSP that does not answer within ocpi.authorize_timeout counts as unreachable: the
    charger is answered per the whitelist fallback (NEVER: Invalid; ALLOWED_OFFLINE:
    Accepted) while the eMSP is still holding both requests unanswered."""
    await registered_emsp(quick, emsp)
    await push_token(emsp, "NEVER001", whitelist="NEVER")
    await push_token(emsp, "OFFLINE1", whitelist="ALLOWED_OFFLINE")
    emsp.authorize_gate = asyncio.Event()
    try:
        # No wall-clock bound (DEVELOPERS.md): the order of events is the behaviour. The
        # charger's answers arrive while the eMSP has been asked and has answered nothing.
        assert await authorize(quick, "NEVER001") == "Invalid"
        assert await authorize(quick, "OFFLINE1") == "Accepted"
        # csms did ask (a request may still be on its way under load: wait for it), and
        # the gate held every answer back.
        await emsp.until(lambda: emsp.authorize_asked == 2)
        assert emsp.authorize_answered == 0
    finally:
        emsp.authorize_gate.set()
    # Released late, the eMSP's answers change nothing: the charger was answered already.
    await emsp.until(lambda: emsp.authorize_answered == 2)


async def test_invalid_tokens_and_unknown_tags(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """A token the eMSP marked invalid is refused from the copy; an idTag that is no
    partner's token still goes to the id-tags registry."""
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "0123ABCD", whitelist="ALWAYS", valid=False)
    async with roaming.api() as api:
        await api.put("/id-tags/LOCAL-1", json={"status": "Accepted"})
    assert await authorize(roaming, "0123ABCD") == "Invalid"
    assert await authorize(roaming, "LOCAL-1") == "Accepted"
    assert await authorize(roaming, "NOBODY") == "Invalid"


async def test_start_after_authorize_asks_once(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """StartTransaction right after an accepted Authorize of the same token at the same
    charger uses that decision: the eMSP is asked once."""
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "0123ABCD", whitelist="NEVER")
    async with roaming.charger("CP-START") as cp:
        authorized = await cp.call("Authorize", {"idTag": "0123ABCD"})
        started = await cp.call(
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "0123ABCD",
                "meterStart": 0,
                "timestamp": "2026-01-01T10:00:00Z",
            },
        )
    assert authorized["idTagInfo"]["status"] == started["idTagInfo"]["status"] == "Accepted"
    assert len(emsp.of("POST", "/ocpi/2.2.1/tokens/0123ABCD/authorize")) == 1


async def test_unregistered_partners_tokens_are_refused(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """Once the partner unregisters, its drivers' tokens no longer open chargers."""
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "0123ABCD", whitelist="ALWAYS")
    assert await authorize(roaming, "0123ABCD") == "Accepted"
    async with emsp.client() as http:
        await http.delete(emsp.endpoint("credentials", "SENDER"))
    assert await authorize(roaming, "0123ABCD") == "Invalid"


async def test_a_partner_sees_and_changes_only_its_own_tokens(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """Another partner, even one set up with the same party, gets 404 for a token it did not
    push, and cannot replace it."""
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "0123ABCD")
    async with running_emsp() as other:
        await registered_emsp(roaming, other, partner_id="other")
        async with other.client() as http:
            seen = await http.get(token_url(other, "0123ABCD"))
            taken = await http.put(token_url(other, "0123ABCD"), json=token_object("0123ABCD"))
    assert (seen.status_code, taken.status_code) == (404, 404)
    async with emsp.client() as http:
        mine = await http.get(token_url(emsp, "0123ABCD"))
    assert mine.json()["data"]["uid"] == "0123ABCD"
