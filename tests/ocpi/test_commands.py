"""Commands as Receiver: each OCPI command becomes its OCPP command, with an immediate
CommandResponse and the CommandResult POSTed to the partner's response_url."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.ocpi.test_locations import add_location, publish, status
from tests.ocpi_partner import FakeEmsp, ocpi_settings, registered_emsp, token_object
from tests.support import MS, RawCharger, RunningCsms, running_csms, settings_for

pytestmark = pytest.mark.postgres

APP_USER = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"


@pytest.fixture
async def impatient(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms that waits 300 ms for a charger's answer."""
    settings = settings_for(database_url, ocpi=ocpi_settings(), call_timeout=300 * MS)
    async with running_csms(settings) as running:
        yield running


async def command(emsp: FakeEmsp, name: str, reference: str, **body: Any) -> dict[str, Any]:
    url = f"{emsp.endpoint('commands', 'RECEIVER')}/{name}"
    response_url = f"{emsp.url}/ocpi/2.2.1/commands/{name}/{reference}"
    async with emsp.client() as http:
        answer = await http.post(url, json={"response_url": response_url, **body})
    reply: dict[str, Any] = answer.json()
    return reply


async def answer_call(cp: RawCharger, payload: dict[str, Any]) -> list[Any]:
    """Take csms's next CALL and answer it; the CALL frame."""
    frame = await cp.recv_frame()
    assert frame[0] == 2, frame
    await cp.send_raw(orjson.dumps([3, frame[1], payload]).decode())
    return frame


async def result(emsp: FakeEmsp, reference: str) -> dict[str, Any]:
    await emsp.until(lambda: any(ref == reference for ref, _ in emsp.results))
    return next(body for ref, body in emsp.results if ref == reference)


async def site_with(csms: RunningCsms, emsp: FakeEmsp, *chargers: str) -> None:
    await add_location(csms, "LOC-1", *chargers)
    await registered_emsp(csms, emsp)
    await publish(csms, {"all": True})


async def test_start_session_runs_remote_start(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """START_SESSION: ACCEPTED at once, RemoteStartTransaction with the token's idTag (a
    derived one for a long APP_USER uid), the CommandResult ACCEPTED at the response_url;
    the charger's Authorize of that idTag is then Accepted without asking the eMSP."""
    await site_with(roaming, emsp, "CP-CMD")
    async with roaming.charger("CP-CMD") as cp:
        await status(cp, 1, "Available")
        reply = await command(
            emsp,
            "START_SESSION",
            "s1",
            token=token_object(APP_USER, token_type="APP_USER", whitelist="NEVER"),
            location_id="LOC-1",
            authorization_reference="REF-1",
        )
        assert reply["status_code"] == 1000, reply
        assert (reply["data"]["result"], reply["data"]["timeout"]) == ("ACCEPTED", 30)
        call = await answer_call(cp, {"status": "Accepted"})
        assert call[2] == "RemoteStartTransaction"
        id_tag = call[3]["idTag"]
        assert len(id_tag) == 20
        assert "connectorId" not in call[3], "one charger: it picks the connector"
        assert await result(emsp, "s1") == {"result": "ACCEPTED"}
        authorized = await cp.call("Authorize", {"idTag": id_tag})
    assert authorized["idTagInfo"]["status"] == "Accepted"
    assert emsp.of("POST", "/ocpi/2.2.1/tokens/") == []
    assert emsp.invalid == []


async def test_commands_are_refused_where_they_cannot_go(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """Unknown location: status 2003 with a REJECTED CommandResponse; a charger that is not
    connected: REJECTED; another eMSP's token: REJECTED; an unknown session: UNKNOWN_SESSION;
    an unknown command or a body missing a field: 2001."""
    await site_with(roaming, emsp, "CP-OFF")
    token = token_object("0123ABCD")
    unknown = await command(emsp, "START_SESSION", "u", token=token, location_id="NOWHERE")
    offline = await command(emsp, "START_SESSION", "o", token=token, location_id="LOC-1")
    foreign = await command(
        emsp, "START_SESSION", "f", token={**token, "party_id": "ABC"}, location_id="LOC-1"
    )
    stop = await command(emsp, "STOP_SESSION", "x", session_id="4242")
    bogus = await command(emsp, "FLY_TO_MOON", "b")
    missing = await command(emsp, "STOP_SESSION", "m")
    assert (unknown["status_code"], unknown["data"]["result"]) == (2003, "REJECTED")
    assert offline["data"]["result"] == "REJECTED"
    assert foreign["data"]["result"] == "REJECTED"
    assert stop["data"]["result"] == "UNKNOWN_SESSION"
    assert bogus["status_code"] == missing["status_code"] == 2001
    assert "session_id" in missing["status_message"]


async def test_unlock_and_reservations(roaming: RunningCsms, emsp: FakeEmsp) -> None:
    """UNLOCK_CONNECTOR -> UnlockConnector on the EVSE's connector (NotSupported ->
    NOT_SUPPORTED); RESERVE_NOW -> ReserveNow with a reservationId csms chose (not the
    eMSP's), and CANCEL_RESERVATION cancels that same id."""
    await site_with(roaming, emsp, "CP-RES")
    async with roaming.charger("CP-RES") as cp:
        await status(cp, 2, "Available")
        unlock = await command(
            emsp,
            "UNLOCK_CONNECTOR",
            "u1",
            location_id="LOC-1",
            evse_uid="CP-RES*2",
            connector_id="1",
        )
        assert unlock["data"]["result"] == "ACCEPTED"
        call = await answer_call(cp, {"status": "NotSupported"})
        assert (call[2], call[3]) == ("UnlockConnector", {"connectorId": 2})
        assert await result(emsp, "u1") == {"result": "NOT_SUPPORTED"}
        reserve = await command(
            emsp,
            "RESERVE_NOW",
            "r1",
            token=token_object("0123ABCD"),
            expiry_date="2099-01-01T00:00:00Z",
            reservation_id="EMSP-RES-77",
            location_id="LOC-1",
            evse_uid="CP-RES*2",
        )
        assert reserve["data"]["result"] == "ACCEPTED"
        call = await answer_call(cp, {"status": "Accepted"})
        assert call[2] == "ReserveNow"
        ocpp_id = call[3]["reservationId"]
        assert (call[3]["connectorId"], call[3]["idTag"]) == (2, "0123ABCD")
        assert await result(emsp, "r1") == {"result": "ACCEPTED"}
        cancel = await command(emsp, "CANCEL_RESERVATION", "c1", reservation_id="EMSP-RES-77")
        assert cancel["data"]["result"] == "ACCEPTED"
        call = await answer_call(cp, {"status": "Accepted"})
        assert (call[2], call[3]) == ("CancelReservation", {"reservationId": ocpp_id})
        assert await result(emsp, "c1") == {"result": "ACCEPTED"}
        unknown = await command(emsp, "CANCEL_RESERVATION", "c2", reservation_id="NEVER-MADE")
    assert unknown["data"]["result"] == "REJECTED"


async def test_a_silent_charger_is_a_timeout(impatient: RunningCsms, emsp: FakeEmsp) -> None:
    """No answer within ocpp.call_timeout: the CommandResult is TIMEOUT."""
    await site_with(impatient, emsp, "CP-MUTE")
    async with impatient.charger("CP-MUTE") as cp:
        await status(cp, 1, "Available")
        reply = await command(
            emsp, "START_SESSION", "t1", token=token_object("0123ABCD"), location_id="LOC-1"
        )
        assert reply["data"]["result"] == "ACCEPTED"
        await cp.recv_frame()
        assert await result(emsp, "t1") == {"result": "TIMEOUT"}


async def test_a_response_url_csms_may_not_call_is_2001(
    roaming: RunningCsms, emsp: FakeEmsp
) -> None:
    """The response_url follows the outgoing-call rules: a non-http URL is 2001, nothing sent."""
    await site_with(roaming, emsp, "CP-URL")
    url = f"{emsp.endpoint('commands', 'RECEIVER')}/STOP_SESSION"
    async with emsp.client() as http:
        answer = await http.post(
            url, json={"response_url": "ftp://files.example/x", "session_id": "1"}
        )
    assert answer.json()["status_code"] == 2001
    assert "response_url" in answer.json()["status_message"]
