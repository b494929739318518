"""Sessions and CDRs as Sender: pushed to the eMSP that owns the token, and pulled by it
only: PUT on start, PATCH on meter values, the final PUT and one CDR at the stop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ocpi.test_locations import add_location
from tests.ocpi_partner import FakeEmsp, registered_emsp, running_emsp, token_object
from tests.sessions import RFID, START, STOP, meter
from tests.support import RunningCsms

pytestmark = pytest.mark.postgres


async def push_token(emsp: FakeEmsp, uid: str, **more: Any) -> None:
    url = f"{emsp.endpoint('tokens', 'RECEIVER')}/NL/EMS/{uid}"
    async with emsp.client() as http:
        answer = await http.put(url, json=token_object(uid, **more))
    assert answer.json()["status_code"] == 1000, answer.text


async def charge(csms: RunningCsms, charger: str, id_tag: str) -> int:
    """Authorize, start at 1,000 Wh, one meter value at 4,000 Wh, stop at 8,500 Wh."""
    async with csms.charger(charger) as cp:
        await cp.call("Authorize", {"idTag": id_tag})
        started = await cp.call("StartTransaction", {**START, "idTag": id_tag})
        tx = int(started["transactionId"])
        await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:30:00Z"))
        await cp.call("StopTransaction", {**STOP, "transactionId": tx, "reason": "EVDisconnected"})
    return tx


async def test_a_session_goes_to_its_tokens_emsp(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """The token owner gets the Session PUT at the start (its CdrToken, auth_method
    AUTH_REQUEST and the eMSP's authorization_reference), a PATCH without charging periods
    for the meter value, the final PUT with status COMPLETED, and one CDR of 7.5 kWh."""
    await add_location(roaming, "LOC-1", "CP-S")
    await registered_emsp(roaming, emsp)
    await push_token(emsp, RFID, whitelist="ALLOWED")
    async with roaming.charger("CP-S") as cp:
        await cp.call("Authorize", {"idTag": RFID})
        started = await cp.call("StartTransaction", {**START, "idTag": RFID})
        tx = int(started["transactionId"])
        # Pushes waiting for a partner collapse to the latest state (docs/ocpi.md), so the
        # charger goes on only once the partner has seen the session ACTIVE.
        await emsp.until(lambda: bool(emsp.of("PUT", "/ocpi/2.2.1/sessions/")))
        await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:30:00Z"))
        await cp.call("StopTransaction", {**STOP, "transactionId": tx, "reason": "EVDisconnected"})
    await emsp.until(lambda: len(emsp.cdrs) == 1)
    session_calls = emsp.of("PUT", "/ocpi/2.2.1/sessions/") + emsp.of(
        "PATCH", "/ocpi/2.2.1/sessions/"
    )
    methods = [(r.method, r.body["status"]) for r in sorted(session_calls, key=emsp.received.index)]
    assert methods[0] == ("PUT", "ACTIVE")
    assert methods[-1] == ("PUT", "COMPLETED")
    assert all(r.path == f"/ocpi/2.2.1/sessions/XX/CSM/{tx}" for r in session_calls)
    session = emsp.sessions[str(tx)]
    assert session["cdr_token"] == {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": RFID,
        "type": "RFID",
        "contract_id": f"NL-EMS-C{RFID[-6:]}",
    }
    assert (session["auth_method"], session["authorization_reference"]) == (
        "AUTH_REQUEST",
        "AUTH-REF-1",
    )
    assert (session["kwh"], session["location_id"]) == (7.5, "LOC-1")
    cdr = emsp.cdrs[0]
    assert (cdr["total_energy"], cdr["total_time"], cdr["total_cost"]) == (
        7.5,
        1.5,
        {"excl_vat": 0.0},
    )
    assert (cdr["session_id"], cdr["cdr_token"], cdr["remark"]) == (
        str(tx),
        session["cdr_token"],
        "EVDisconnected",
    )
    assert cdr["cdr_location"]["evse_uid"] == "CP-S*1"
    assert emsp.invalid == []


async def test_pull_shows_a_partner_only_its_own(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """GET sessions (date_from required) and GET cdrs: the caller's own, none of another
    eMSP's; a STOP_SESSION for another eMSP's session is UNKNOWN_SESSION."""
    await add_location(roaming, "LOC-1", "CP-P")
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "AAAA0001")
    async with running_emsp() as other:
        await registered_emsp(roaming, other, partner_id="other")
        mine = await charge(roaming, "CP-P", "AAAA0001")
        await charge(roaming, "CP-P", "LOCALTAG")
        await emsp.until(lambda: len(emsp.cdrs) == 1)
        async with other.client() as http:
            theirs = await http.get(
                other.endpoint("sessions", "SENDER"), params={"date_from": "2000-01-01T00:00:00Z"}
            )
            their_cdrs = await http.get(other.endpoint("cdrs", "SENDER"))
            stop = await http.post(
                f"{other.endpoint('commands', 'RECEIVER')}/STOP_SESSION",
                json={
                    "response_url": f"{other.url}/ocpi/2.2.1/commands/STOP_SESSION/1",
                    "session_id": str(mine),
                },
            )
    async with emsp.client() as http:
        no_date = await http.get(emsp.endpoint("sessions", "SENDER"))
        sessions = await http.get(
            emsp.endpoint("sessions", "SENDER"), params={"date_from": "2000-01-01T00:00:00Z"}
        )
        cdrs = await http.get(emsp.endpoint("cdrs", "SENDER"))
    assert no_date.json()["status_code"] == 2001
    assert [s["id"] for s in sessions.json()["data"]] == [str(mine)]
    assert sessions.json()["data"][0]["status"] == "COMPLETED"
    assert [c["session_id"] for c in cdrs.json()["data"]] == [str(mine)]
    assert cdrs.headers["x-total-count"] == "1"
    assert theirs.json()["data"] == their_cdrs.json()["data"] == []
    assert stop.json()["data"]["result"] == "UNKNOWN_SESSION"
    assert other.of("PUT", "/ocpi/2.2.1/sessions/") == []


async def test_sessions_of_other_tags_are_not_pushed(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """An idTag that is no partner's token stays between csms and its operator."""
    await add_location(roaming, "LOC-1", "CP-L")
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "AAAA0002")
    async with roaming.api() as api:
        await api.put("/id-tags/LOCALTAG", json={"status": "Accepted"})
    await charge(roaming, "CP-L", "LOCALTAG")
    # Events are fed in order: once the later session's CDR is there, the earlier one was
    # handled too.
    later = await charge(roaming, "CP-L", "AAAA0002")
    await emsp.until(lambda: len(emsp.cdrs) == 1)
    assert set(emsp.sessions) == {str(later)}
    assert [cdr["session_id"] for cdr in emsp.cdrs] == [str(later)]


async def test_a_sent_cdr_is_corrected_by_a_credit_cdr(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """mod_cdrs §Credit CDRs: the CDR is never sent again; the operator's credit is a new
    CDR `{id}-C` with credit true, credit_reference_id and total_cost negated; a CDR is
    credited once, and an unknown one is 404."""
    await add_location(roaming, "LOC-1", "CP-C")
    await registered_emsp(roaming, emsp)
    await push_token(emsp, "AAAA0003")
    tx = await charge(roaming, "CP-C", "AAAA0003")
    await emsp.until(lambda: len(emsp.cdrs) == 1)
    async with roaming.api() as api:
        credited = await api.post(f"/partners/emsp/cdrs/{tx}/credit")
        again = await api.post(f"/partners/emsp/cdrs/{tx}/credit")
        unknown = await api.post("/partners/emsp/cdrs/999999/credit")
    assert (credited.status_code, again.status_code, unknown.status_code) == (201, 409, 404)
    await emsp.until(lambda: len(emsp.cdrs) == 2)
    original, credit = emsp.cdrs
    assert (credit["id"], credit["credit"], credit["credit_reference_id"]) == (
        f"{tx}-C",
        True,
        str(tx),
    )
    assert credit["total_cost"] == {"excl_vat": -original["total_cost"]["excl_vat"]}
    assert credit["total_energy"] == original["total_energy"]
    assert emsp.invalid == []
