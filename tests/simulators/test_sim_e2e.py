"""The simulator against the real CSMS (the ``csms`` fixture): scenarios, commands, offline replay,
and a thousand chargers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pytest

from simulators import Charger, Fleet, Scenario
from simulators.__main__ import raise_fd_limit
from simulators.clock import iso
from simulators.ocppj import validate_response
from simulators.power import PowerCurve
from simulators.scenario import Span, plan_charger
from simulators.station import EvSpec, Registration
from tests.support import MS

WAIT = 15_000 * MS


async def register_tags(csms: Any, tags: list[str]) -> None:
    """Make the CSMS accept these idTags."""
    async with httpx.AsyncClient(
        base_url=csms.api_url,
        headers={"Authorization": f"Bearer {csms.api_token}"},
        timeout=WAIT,
    ) as client:
        for start in range(0, len(tags), 50):
            responses = await asyncio.gather(
                *(
                    client.put(f"/id-tags/{tag}", json={"status": "Accepted"})
                    for tag in tags[start : start + 50]
                )
            )
            for response in responses:
                assert response.status_code in (200, 201), response.text


async def api_get(csms: Any, path: str, **params: Any) -> dict[str, Any]:
    """GET from the CSMS API."""
    async with httpx.AsyncClient(
        base_url=csms.api_url,
        headers={"Authorization": f"Bearer {csms.api_token}"},
        timeout=WAIT,
    ) as client:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def transactions_of(csms: Any, identity: str) -> list[dict[str, Any]]:
    """The CSMS's transactions of one charger."""
    body = await api_get(csms, "/transactions", chargePointId=identity)
    items: list[dict[str, Any]] = body["items"]
    return items


def commuter_scenario() -> Scenario:
    """The shipped commuter day, squeezed: an hour of arrivals, 2-3 h stays, at 3600x."""
    base = Scenario.load("commute")
    sessions = dataclasses.replace(
        base.sessions,
        arrival_start=0.0,
        arrival_spread=1800.0,
        dwell=Span(2 * 3600.0, 3 * 3600.0),
        unplug_after=Span(60.0, 120.0),
        id_tag="COMMUTE-{n:03d}",
    )
    return base.replace(
        speed=3600.0,
        duration=8 * 3600.0,
        connect_spread=0.0,
        sessions=sessions,
        config={"MeterValueSampleInterval": 900},
    )


async def test_commuter_day_three_chargers(csms: Any) -> None:
    """Three commuter-day chargers give three CSMS transactions with the curve's energy."""
    scenario = commuter_scenario()
    await register_tags(csms, [f"COMMUTE-{n:03d}" for n in (1, 2, 3)])
    fleet = Fleet(
        csms.ocpp_url,
        scenario,
        chargers=3,
        connectors=1,
        identity_pattern="COMMUTE-{n:03d}",
        validate_outbound=True,
    )
    async with asyncio.timeout(60):
        summary = await fleet.run(until_done=True)
    assert summary["ok"], summary["errors"]
    assert summary["ended_by"] == "done"
    assert summary["transactions_started"] == summary["transactions_stopped"] == 3
    for index, charger in enumerate(fleet.chargers):
        [record] = charger.completed
        [visit] = plan_charger(scenario, index + 1, charger.identity, 1).sessions[0]
        curve = PowerCurve(visit.battery_wh, visit.ev_max_power_w)
        # The dwell less the Authorize round trip; at 3600x a busy machine's scheduling
        # jitter of a few real milliseconds is tens of simulated seconds either way.
        charging = record.stopped_at - record.started_at
        assert visit.dwell - 600.0 < charging <= visit.dwell + 600.0
        expected = curve.charge(visit.soc_start, charging, 22_080.0, visit.soc_target)
        assert record.energy_wh == pytest.approx(expected.energy_wh, rel=1e-6)
        [tx] = await transactions_of(csms, charger.identity)
        assert tx["status"] == "completed"
        assert tx["transactionId"] == record.transaction_id
        assert (tx["meterStart"], tx["meterStop"]) == (record.meter_start, record.meter_stop)
        assert tx["energyWh"] == record.metered_wh
        assert abs(tx["energyWh"] - expected.energy_wh) <= 1.0
        assert tx["stopReason"] == "Local"
        anomalies = {"future_start", "future_stop", "meter_regression", "stop_before_start"}
        assert not anomalies & set(tx["flags"]), tx["flags"]


def _profile(purpose: str, limit: float, profile_id: int) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": 1,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }


async def test_every_command_gets_a_valid_answer(csms: Any) -> None:
    """Every CSMS->charger command gets a schema-valid answer and takes effect."""
    identity = "SIM-COMMANDS"
    await register_tags(csms, ["REMOTE-1"])
    async with Charger(
        url=csms.ocpp_url,
        identity=identity,
        connectors=2,
        config={"AuthorizeRemoteTxRequests": True, "MeterValueSampleInterval": 1},
    ) as cp:
        assert (await cp.boot())["status"] == "Accepted"
        for connector in (0, 1, 2):
            await cp.status(connector, "Available")
        connection = csms.chargers.get(identity)
        assert connection is not None

        async def command(action: str, payload: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = await connection.call(action, payload, timeout=WAIT)
            assert validate_response(action, result) is None, (action, result)
            incoming = await cp.next_incoming(action, timeout=WAIT)
            assert incoming.response == result
            return result

        now = iso(time.time())
        soon = iso(time.time() + 3600)
        assert (await command("GetConfiguration", {"key": ["HeartbeatInterval"]}))[
            "configurationKey"
        ][0]["key"] == "HeartbeatInterval"
        assert (await command("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}))[
            "status"
        ] == "Accepted"
        assert cp.core.config.get_int("HeartbeatInterval") == 60
        assert (await command("ChangeConfiguration", {"key": "Nope", "value": "1"}))[
            "status"
        ] == "NotSupported"
        assert (await command("ClearCache", {}))["status"] == "Accepted"
        assert (await command("DataTransfer", {"vendorId": "SimVendor", "data": "ping"}))[
            "data"
        ] == "ping"
        local_list = {
            "listVersion": 2,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "LOCAL-1", "idTagInfo": {"status": "Accepted"}}],
        }
        assert (await command("SendLocalList", local_list))["status"] == "Accepted"
        assert (await command("GetLocalListVersion", {}))["listVersion"] == 2
        reserve = {"connectorId": 2, "expiryDate": soon, "idTag": "R-1", "reservationId": 5}
        assert (await command("ReserveNow", reserve))["status"] == "Accepted"
        assert (await command("CancelReservation", {"reservationId": 5}))["status"] == "Accepted"
        assert (await command("ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}))[
            "status"
        ] == "Accepted"
        assert (await command("ChangeAvailability", {"connectorId": 2, "type": "Operative"}))[
            "status"
        ] == "Accepted"

        # RemoteStart runs a real session: Authorize first (AuthorizeRemoteTxRequests), Start, ...
        start = {"idTag": "REMOTE-1", "connectorId": 1}
        assert (await command("RemoteStartTransaction", start))["status"] == "Accepted"
        await cp.wait_for(
            lambda: (s := cp.core.session(1)) is not None and s.transaction_id is not None,
            timeout=WAIT,
        )
        session = cp.core.session(1)
        assert session is not None
        transaction_id = session.transaction_id
        assert transaction_id is not None
        tx_profile = {
            "connectorId": 1,
            "csChargingProfiles": {
                **_profile("TxProfile", 8.0, 21),
                "transactionId": transaction_id,
            },
        }
        assert (await command("SetChargingProfile", tx_profile))["status"] == "Accepted"
        assert cp.core.limit_w(1, asyncio.get_running_loop().time()) == pytest.approx(8 * 690.0)
        default = {"connectorId": 0, "csChargingProfiles": _profile("TxDefaultProfile", 16.0, 22)}
        assert (await command("SetChargingProfile", default))["status"] == "Accepted"
        composite = await command(
            "GetCompositeSchedule", {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"}
        )
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 8.0
        assert (await command("ClearChargingProfile", {"id": 22}))["status"] == "Accepted"
        for message in ("MeterValues", "StatusNotification", "Heartbeat", "BootNotification"):
            trigger = {"requestedMessage": message, "connectorId": 1}
            if message in ("Heartbeat", "BootNotification"):
                trigger.pop("connectorId")
            assert (await command("TriggerMessage", trigger))["status"] == "Accepted"
        for message in ("FirmwareStatusNotification", "DiagnosticsStatusNotification"):
            assert (await command("TriggerMessage", {"requestedMessage": message}))[
                "status"
            ] == "Accepted"
        assert (await command("RemoteStopTransaction", {"transactionId": transaction_id}))[
            "status"
        ] == "Accepted"
        await cp.wait_for(lambda: len(cp.completed) == 1, timeout=WAIT)
        [tx] = [
            t for t in await transactions_of(csms, identity) if t["transactionId"] == transaction_id
        ]
        assert tx["status"] == "completed"
        assert tx["stopReason"] == "Remote"
        assert tx["meterStop"] == cp.completed[0].meter_stop
        assert (await command("RemoteStopTransaction", {"transactionId": transaction_id}))[
            "status"
        ] == "Rejected"
        assert (await command("UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"
        diagnostics = await command("GetDiagnostics", {"location": "ftp://logs.example/"})
        assert diagnostics["fileName"].startswith("diagnostics-")
        assert (
            await command("UpdateFirmware", {"location": "https://fw/x.bin", "retrieveDate": now})
            == {}
        )
        connects = cp.stats.connects
        assert (await command("Reset", {"type": "Soft"}))["status"] == "Accepted"
        await cp.wait_for(
            lambda: cp.stats.connects > connects and cp.registration is Registration.ACCEPTED,
            timeout=WAIT,
        )
        assert cp.stats.protocol_errors == 0, cp.stats.errors
        assert cp.stats.callerrors_received == 0, cp.stats.errors


async def test_offline_replay_keeps_order(csms: Any) -> None:
    """Dropped mid-session: queued MeterValues and Stop reach the CSMS in order on reconnect."""
    identity = "SIM-OFFLINE"
    await register_tags(csms, ["OFF-1"])
    async with Charger(url=csms.ocpp_url, identity=identity, connectors=1) as cp:
        await cp.boot()
        await cp.status(1, "Preparing")
        assert (await cp.authorize("OFF-1"))["idTagInfo"]["status"] == "Accepted"
        started = await cp.start_transaction(connector_id=1, id_tag="OFF-1", meter_start=1000)
        tid = started["transactionId"]
        await cp.meter_values(1, transaction_id=tid, energy_wh=1500)
        await cp.disconnect()
        assert not cp.connected
        base = time.time()  # one sample a second while offline (distinct timestamps)
        queued = [
            asyncio.ensure_future(
                cp.meter_values(1, transaction_id=tid, energy_wh=wh, timestamp=iso(base + i))
            )
            for i, wh in enumerate((2000, 2500, 3000), start=1)
        ]
        stop = cp.stop_transaction(tid, 3200, id_tag="OFF-1", timestamp=iso(base + 4))
        queued.append(asyncio.ensure_future(stop))
        await cp.wait_for(lambda: cp.core.queued_transactional == 4, timeout=WAIT)
        [tx] = await transactions_of(csms, identity)
        assert tx["status"] == "active"
        await cp.connect()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*queued)
        [tx] = await transactions_of(csms, identity)
        assert (tx["status"], tx["meterStop"], tx["energyWh"]) == ("completed", 3200, 2200.0)
        values = await api_get(csms, f"/transactions/{tid}/meter-values")
        registers = [
            float(v["value"])
            for v in values["items"]
            if v["measurand"] == "Energy.Active.Import.Register"
        ]
        assert registers == [1500.0, 2000.0, 2500.0, 3000.0]
        assert cp.stats.protocol_errors == 0


async def test_offline_simulated_session_replays(csms: Any) -> None:
    """A simulated session charging offline replays its samples and Stop; energies agree."""
    identity = "SIM-OFFLINE-SIM"
    await register_tags(csms, ["OFF-2"])
    async with Charger(
        url=csms.ocpp_url,
        identity=identity,
        connectors=1,
        speed=60.0,
        auto_boot=True,
        config={"MeterValueSampleInterval": 30},
    ) as cp:
        await cp.wait_for(lambda: cp.registration is Registration.ACCEPTED, timeout=WAIT)
        assert cp.plug_in(1, "OFF-2", ev=EvSpec(50_000.0, 11_000.0, 0.3, 1.0))
        await cp.wait_for(
            lambda: (s := cp.core.session(1)) is not None and s.transaction_id is not None,
            timeout=WAIT,
        )
        await cp.disconnect()
        await cp.wait_for(lambda: cp.core.queued_transactional >= 3, timeout=WAIT)
        assert cp.stop_session(1)
        sent_before = cp.stats.calls_sent
        await cp.connect()
        await cp.wait_for(lambda: len(cp.completed) == 1, timeout=WAIT)
        assert cp.stats.calls_sent - sent_before >= 4
        [record] = cp.completed
        [tx] = await transactions_of(csms, identity)
        assert tx["status"] == "completed"
        assert tx["energyWh"] == record.metered_wh > 0
        values = await api_get(csms, f"/transactions/{record.transaction_id}/meter-values")
        registers = [
            float(v["value"])
            for v in values["items"]
            if v["measurand"] == "Energy.Active.Import.Register"
            and v["context"] == "Sample.Periodic"
        ]
        assert registers == sorted(registers)
        assert len(registers) >= 3
        assert record.meter_start <= registers[0] <= registers[-1] <= record.meter_stop
        assert cp.stats.protocol_errors == 0


async def test_raw_messages_and_crossing_calls(csms: Any) -> None:
    """Low-level helpers: a raw CALL gets its raw answer; a CSMS CALL crossing ours is answered."""
    identity = "SIM-RAW"
    async with Charger(url=csms.ocpp_url, identity=identity, connectors=1) as cp:
        await cp.boot()
        cp.send_raw('[2,"raw-1","Heartbeat",{}]')
        answer = await cp.recv_raw(timeout=WAIT)
        assert answer.startswith('[3,"raw-1",')
        cp.send_raw('[2,"raw-2","Heartbeat",{"bogus":1}]')
        error = await cp.recv_raw(timeout=WAIT)
        assert error.startswith('[4,"raw-2","FormationViolation"')
        connection = csms.chargers.get(identity)
        heartbeat = asyncio.ensure_future(cp.heartbeat())
        result = await connection.call("GetConfiguration", {"key": ["NumberOfConnectors"]})
        assert result["configurationKey"][0]["value"] == "1"
        assert "currentTime" in await heartbeat
        assert cp.stats.protocol_errors == 0


async def test_thousand_chargers_one_session_each(csms: Any) -> None:
    """1,000 chargers boot and run one session each with zero errors (time printed)."""
    # Free-vend mode (one accepted idTag, no Authorize), as many depot chargers run: the test
    # measures boots and sessions rather than registering a thousand tags through the API.
    raise_fd_limit(2600)
    count = 1000
    base = Scenario.load("commute")
    sessions = dataclasses.replace(
        base.sessions,
        arrival_start=6.0,  # after the connections (spread over 5 s) are up
        arrival_spread=15.0,
        distribution=base.sessions.distribution.UNIFORM,
        dwell=Span(6.0, 10.0),
        unplug_after=Span(1.0, 2.0),
        authorize=False,
        id_tag="FREEVEND",
    )
    scenario = base.replace(
        speed=1.0,
        duration=None,
        connect_spread=5.0,
        sessions=sessions,
        config={"MeterValueSampleInterval": 5, "StopTransactionOnInvalidId": False},
    )
    await register_tags(csms, ["FREEVEND"])
    fleet = Fleet(
        csms.ocpp_url,
        scenario,
        chargers=count,
        connectors=1,
        identity_pattern="LOAD-{n:05d}",
        open_timeout=30_000 * MS,
    )
    began = time.monotonic()
    async with asyncio.timeout(120):
        summary = await fleet.run(until_done=True)
    elapsed = time.monotonic() - began
    print(
        f"\n1000 chargers, one session each: {elapsed:.1f} s, "
        f"{summary['messages_sent'] + summary['messages_received']} messages, "
        f"latency p50 {summary['latency_ms']['p50']} ms p99 {summary['latency_ms']['p99']} ms"
    )
    assert summary["ok"], summary["errors"]
    assert summary["ended_by"] == "done"
    assert summary["counters"]["sessions_missed"] == 0
    assert summary["counters"]["boots_accepted"] == count
    assert summary["transactions_started"] == summary["transactions_stopped"] == count
    assert summary["counters"]["connect_failures"] == 0
    assert all(len(c.completed) == 1 for c in fleet.chargers)
    assert all(c.completed[0].metered_wh > 0 for c in fleet.chargers)
    body = await api_get(csms, "/transactions", active="false", limit=1)
    assert body["total"] == count
