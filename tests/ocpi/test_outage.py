"""A partner down during a busy hour, and csms restarted meanwhile: once the partner is
back, every push arrives, in order, collapsed to the latest state where OCPI allows, and
no CDR is lost."""

from __future__ import annotations

import pytest

from tests.ocpi.test_locations import add_location, publish
from tests.ocpi.test_sessions import push_token
from tests.ocpi_partner import FakeEmsp, ocpi_settings, registered_emsp
from tests.sessions import START, STOP, meter
from tests.support import MS, RunningCsms, running_csms, settings_for

pytestmark = pytest.mark.postgres

CHARGERS = ("CP-O1", "CP-O2", "CP-O3")
CYCLE = ("Preparing", "Charging", "SuspendedEV", "Finishing", "Available", "Faulted")
OCPI_STATUS = {
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "Finishing": "BLOCKED",
    "Available": "AVAILABLE",
    "Faulted": "OUTOFORDER",
}


async def busy_hour(csms: RunningCsms) -> tuple[dict[str, str], dict[str, float]]:
    """Status changes on two connectors of each charger, and one session per charger; the
    last status of each EVSE and the energy of each session."""
    last: dict[str, str] = {}
    energy: dict[str, float] = {}
    for n, charger in enumerate(CHARGERS):
        async with csms.charger(charger) as cp:
            for round_ in range(8):
                for connector in (1, 2):
                    value = CYCLE[(round_ + connector + n) % len(CYCLE)]
                    await cp.call(
                        "StatusNotification",
                        {"connectorId": connector, "errorCode": "NoError", "status": value},
                    )
                    last[f"{charger}*{connector}"] = OCPI_STATUS[value]
            tag = f"OUTAGE0{n}"
            started = await cp.call("StartTransaction", {**START, "idTag": tag})
            tx = int(started["transactionId"])
            for minute in range(5):
                wh = 1000 + 500 * (minute + 1)
                await cp.call("MeterValues", meter(tx, wh, f"2026-03-01T10:{10 + minute}:00Z"))
            await cp.call("StopTransaction", {**STOP, "transactionId": tx})
            energy[str(tx)] = (STOP["meterStop"] - START["meterStart"]) / 1000
    return last, energy


async def test_partner_down_then_back_gets_everything_in_order(
    database_url: str, emsp: FakeEmsp
) -> None:
    """Down through the busy hour and a csms restart, back afterwards: final EVSE statuses,
    every Session ending COMPLETED after its PUT, one CDR per session after its last Session
    push; EVSE PATCHes collapsed to at most one per EVSE; nothing refused."""
    async with running_csms(settings_for(database_url, ocpi=ocpi_settings())) as csms:
        await add_location(csms, "LOC-1", *CHARGERS)
        await registered_emsp(csms, emsp)
        await publish(csms, {"all": True})
        await emsp.until(lambda: "LOC-1" in emsp.locations)
        for n in range(len(CHARGERS)):
            await push_token(emsp, f"OUTAGE0{n}")
        delivered_before = len(emsp.received)
        emsp.down = True
        last, energy = await busy_hour(csms)
        async with csms.api() as api:
            waiting = (await api.get("/partners/emsp")).json()["pushesWaiting"]
        assert waiting > 0
    assert len(emsp.received) == delivered_before, "nothing got through while down"

    async with (
        running_csms(settings_for(database_url, ocpi=ocpi_settings())) as csms,
        # Back online, so that their EVSEs show their statuses, not UNKNOWN.
        csms.charger(CHARGERS[0]),
        csms.charger(CHARGERS[1]),
        csms.charger(CHARGERS[2]),
    ):
        emsp.down = False
        await emsp.until(lambda: len(emsp.cdrs) == len(CHARGERS), within=30_000 * MS)
        await emsp.until(
            lambda: (
                {e["uid"]: e["status"] for e in emsp.locations["LOC-1"].get("evses", [])} == last
            ),
            within=30_000 * MS,
        )
        async with csms.api() as api:
            partner = (await api.get("/partners/emsp")).json()
    after = emsp.received[delivered_before:]
    patches = [r for r in after if r.method == "PATCH" and "/locations/" in r.path]
    assert len(patches) <= len(last), "one PATCH per EVSE at most: the latest status"
    for tx, kwh in energy.items():
        session_calls = [r for r in after if r.path.endswith(f"/sessions/XX/CSM/{tx}")]
        assert session_calls[0].method == "PUT"
        assert (session_calls[-1].method, session_calls[-1].body["status"]) == ("PUT", "COMPLETED")
        assert emsp.sessions[tx]["kwh"] == kwh
        cdr_at = next(
            i
            for i, r in enumerate(after)
            if r.path.endswith("/cdrs") and r.body["session_id"] == tx
        )
        assert cdr_at > after.index(session_calls[-1])
    assert sorted(cdr["session_id"] for cdr in emsp.cdrs) == sorted(energy)
    assert partner["pushesRefused"] == 0
    assert emsp.invalid == []
