"""Roaming end to end: a test eMSP and the simulator drive one whole OCPI 2.2.1 story.

register -> locations pushed -> a charger's status change PATCHed within seconds -> the
partner's token pushed -> the simulator starts a session on an OCPI START_SESSION ->
Session pushed -> STOP_SESSION -> CDR posted with the charger's energy and csms's cost.
"""

from __future__ import annotations

import asyncio

from simulators import Charger
from tests.ocpi.test_locations import add_location, publish
from tests.ocpi_partner import ocpi_settings, registered_emsp, running_emsp, token_object
from tests.support import MS, running_csms, settings_for

RFID = "04A2B3C4D5E6F7"
WAIT = 10_000 * MS


async def test_a_partner_drives_a_session_end_to_end(database_url: str) -> None:
    """The whole flow, every object validated by the eMSP on arrival."""
    settings = settings_for(database_url, ocpi=ocpi_settings())
    async with running_csms(settings) as csms, running_emsp() as emsp:
        await add_location(csms, "LOC-1", "SIM-R1")
        async with Charger(
            csms.ocpp_url,
            "SIM-R1",
            connectors=1,
            speed=600.0,
            config={"MeterValueSampleInterval": 300, "AuthorizeRemoteTxRequests": True},
        ) as cp:
            await cp.boot()
            await cp.status(1, "Available")

            # Register, and the location is pushed with its EVSE.
            await registered_emsp(csms, emsp)
            await publish(csms, {"all": True})
            await emsp.until(lambda: "LOC-1" in emsp.locations)
            assert emsp.locations["LOC-1"]["evses"][0]["status"] == "AVAILABLE"

            # A status change reaches the eMSP within seconds, as a PATCH.
            loop = asyncio.get_running_loop()
            changed_at = loop.time()
            await cp.status(1, "Unavailable")
            await emsp.until(lambda: bool(emsp.of("PATCH", "/ocpi/2.2.1/locations/")))
            assert loop.time() - changed_at < 5_000 * MS
            assert emsp.locations["LOC-1"]["evses"][0]["status"] == "INOPERATIVE"
            await cp.status(1, "Available")

            # The eMSP pushes its driver's token, then starts a session for it.
            tokens = emsp.endpoint("tokens", "RECEIVER")
            async with emsp.client() as http:
                pushed = await http.put(f"{tokens}/NL/EMS/{RFID}", json=token_object(RFID))
                started = await http.post(
                    f"{emsp.endpoint('commands', 'RECEIVER')}/START_SESSION",
                    json={
                        "response_url": f"{emsp.url}/ocpi/2.2.1/commands/START_SESSION/s1",
                        "token": token_object(RFID),
                        "location_id": "LOC-1",
                        "evse_uid": "SIM-R1*1",
                        "authorization_reference": "EMSP-AUTH-1",
                    },
                )
            assert pushed.status_code == 201
            assert started.json()["data"]["result"] == "ACCEPTED"
            await emsp.until(lambda: ("s1", {"result": "ACCEPTED"}) in emsp.results)
            await emsp.until(lambda: any(s["kwh"] > 0 for s in emsp.sessions.values()), within=WAIT)
            [session_id] = emsp.sessions
            session = emsp.sessions[session_id]
            assert (session["status"], session["auth_method"]) == ("ACTIVE", "COMMAND")
            assert session["authorization_reference"] == "EMSP-AUTH-1"
            assert (session["location_id"], session["evse_uid"]) == ("LOC-1", "SIM-R1*1")

            # The eMSP stops it; the CDR follows.
            async with emsp.client() as http:
                stopped = await http.post(
                    f"{emsp.endpoint('commands', 'RECEIVER')}/STOP_SESSION",
                    json={
                        "response_url": f"{emsp.url}/ocpi/2.2.1/commands/STOP_SESSION/s2",
                        "session_id": session_id,
                    },
                )
            assert stopped.json()["data"]["result"] == "ACCEPTED"
            await emsp.until(lambda: len(emsp.cdrs) == 1, within=WAIT)
            await cp.wait_for(lambda: len(cp.completed) == 1, timeout=WAIT)
            record = cp.completed[0]
    assert ("s2", {"result": "ACCEPTED"}) in emsp.results
    assert emsp.sessions[session_id]["status"] == "COMPLETED"
    cdr = emsp.cdrs[0]
    assert cdr["session_id"] == session_id
    assert cdr["total_energy"] == round((record.meter_stop - record.meter_start) / 1000, 4)
    assert cdr["total_energy"] > 0
    # csms does no pricing yet (docs/events.md, "Mapping decisions"): the cost is 0.
    assert cdr["total_cost"] == {"excl_vat": 0.0}
    assert cdr["cdr_token"]["party_id"] == "EMS"
    assert (cdr["auth_method"], cdr["authorization_reference"]) == ("COMMAND", "EMSP-AUTH-1")
    assert cdr["cdr_location"]["evse_id"] == "XX*CSM*ESIM*R1*1"
    assert emsp.invalid == []
