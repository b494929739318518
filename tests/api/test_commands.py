"""Commands through the HTTP API to a strict charger: all 19 actions and every failure status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.strict_charger import EXAMPLES, strict_charger
from tests.support import MS, RunningCsms, running_csms, settings_for


@pytest.mark.postgres
async def test_every_action_round_trips(csms: RunningCsms) -> None:
    """Each of the 19 actions: validated, sent schema-valid, answered 200, and recorded."""
    async with strict_charger(f"{csms.ocpp_url}/CP-ALL") as charger, csms.api() as api:
        for action, (request, answer) in EXAMPLES.items():
            response = await api.post(
                f"/charge-points/CP-ALL/commands/{action}",
                json=request,
                headers={"X-Requested-By": "ops@example.com"},
            )
            assert response.status_code == 200, (action, response.text)
            assert response.json() == {
                "action": action,
                "chargePointId": "CP-ALL",
                "response": answer,
            }
        records = (await api.get("/charge-points/CP-ALL/commands", params={"limit": 50})).json()
    assert [action for action, _ in charger.received] == list(EXAMPLES)
    assert charger.violations == []
    assert records["total"] == 19
    assert {item["outcome"] for item in records["items"]} == {"ok"}
    assert {item["requestedBy"] for item in records["items"]} == {"ops@example.com"}
    assert records["items"][0]["action"] == "UpdateFirmware"  # newest first


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/charge-points/NOBODY/commands/Reset", {"type": "Soft"}, 404, "not found"),
        ("/charge-points/NOBODY/commands/FooBar", {}, 404, "not found"),
        ("/charge-points/CP-OFF/commands/FooBar", {}, 422, "unknown action FooBar"),
        ("/charge-points/CP-OFF/commands/Reset", {"type": "Medium"}, 422, "/type"),
        ("/charge-points/CP-OFF/commands/Reset", {}, 422, "required"),
        ("/charge-points/CP-OFF/commands/Reset", {"type": "Soft", "x": 1}, 422, "x"),
        ("/charge-points/CP-OFF/commands/Heartbeat", {}, 422, "unknown action"),
        ("/charge-points/CP-OFF/commands/Reset", {"type": "Soft"}, 409, "not connected"),
    ],
)
async def test_refusals_come_in_the_contract_order(
    csms: RunningCsms, path: str, body: dict[str, Any], status: int, detail: str
) -> None:
    """404 unknown charger first, then 422 bad action or payload, then 409 not connected."""
    async with csms.api() as api:
        await api.put("/charge-points/CP-OFF", json={})
        response = await api.post(path, json=body)
    assert response.status_code == status
    assert detail in response.json()["detail"]


async def test_invalid_payload_is_never_sent(csms: RunningCsms) -> None:
    """A 422 command does not reach the charger."""
    async with strict_charger(f"{csms.ocpp_url}/CP-422") as charger, csms.api() as api:
        bad = await api.post(
            "/charge-points/CP-422/commands/UnlockConnector", json={"connectorId": "1"}
        )
        good = await api.post("/charge-points/CP-422/commands/ClearCache", json={})
    assert (bad.status_code, good.status_code) == (422, 200)
    assert [action for action, _ in charger.received] == ["ClearCache"]


@pytest.fixture
async def quick_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with a short call timeout and room for one command per charger."""
    settings = settings_for(database_url, call_timeout=500 * MS, command_queue_size=1)
    async with running_csms(settings) as running:
        yield running


async def test_silent_charger_gives_504_and_the_late_answer_is_dropped(
    quick_csms: RunningCsms,
) -> None:
    """504 after call_timeout; the late answer is dropped, the next command gets its own."""
    async with strict_charger(f"{quick_csms.ocpp_url}/CP-504") as charger, quick_csms.api() as api:
        charger.silent.add("Reset")
        timed_out = await api.post("/charge-points/CP-504/commands/Reset", json={"type": "Soft"})
        assert timed_out.status_code == 504
        await charger.reply(charger.unanswered[0], "Reset")  # too late
        version = await api.post("/charge-points/CP-504/commands/GetLocalListVersion", json={})
        records = (await api.get("/charge-points/CP-504/commands")).json()["items"]
    assert version.status_code == 200
    assert version.json()["response"] == {"listVersion": 3}
    assert [item["outcome"] for item in records] == ["ok", "timeout"]


async def test_call_error_gives_502_with_the_chargers_error(csms: RunningCsms) -> None:
    """502 carries the charger's errorCode, errorDescription and errorDetails."""
    async with strict_charger(f"{csms.ocpp_url}/CP-502") as charger, csms.api() as api:
        charger.errors["Reset"] = ("NotSupported", "no resets here", {"why": "firmware"})
        response = await api.post("/charge-points/CP-502/commands/Reset", json={"type": "Hard"})
        records = (await api.get("/charge-points/CP-502/commands")).json()["items"]
    assert response.status_code == 502
    body = response.json()
    assert (body["errorCode"], body["errorDescription"], body["errorDetails"]) == (
        "NotSupported",
        "no resets here",
        {"why": "firmware"},
    )
    assert records[0]["outcome"] == "callerror"
    assert records[0]["errorCode"] == "NotSupported"


async def test_full_queue_is_429_with_retry_after(quick_csms: RunningCsms) -> None:
    """With as many commands waiting as the queue holds, the next one is 429 with Retry-After."""
    async with strict_charger(f"{quick_csms.ocpp_url}/CP-Q") as charger, quick_csms.api() as api:
        charger.silent.add("ClearCache")
        first = asyncio.create_task(api.post("/charge-points/CP-Q/commands/ClearCache", json={}))
        await charger.next_call()
        refused = await api.post("/charge-points/CP-Q/commands/Reset", json={"type": "Soft"})
        await charger.reply(charger.unanswered[0], "ClearCache")
        assert (await first).status_code == 200
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert [action for action, _ in charger.received] == ["ClearCache"]


async def test_concurrent_commands_go_one_at_a_time(csms: RunningCsms) -> None:
    """Commands sent together to one charger reach it one after the other, all answered."""
    async with strict_charger(f"{csms.ocpp_url}/CP-SEQ") as charger, csms.api() as api:
        charger.silent.add("ClearCache")
        first = asyncio.create_task(api.post("/charge-points/CP-SEQ/commands/ClearCache", json={}))
        await charger.next_call()
        others = [
            asyncio.create_task(api.post(f"/charge-points/CP-SEQ/commands/{action}", json=body))
            for action, body in (("GetLocalListVersion", {}), ("Reset", {"type": "Soft"}))
        ]
        await charger.reply(charger.unanswered[0], "ClearCache")
        statuses = [(await task).status_code for task in (first, *others)]
    assert statuses == [200, 200, 200]
    assert charger.max_outstanding == 1
    assert len(charger.received) == 3


async def test_operator_actions(csms: RunningCsms) -> None:
    """sessions/start, reset, unlock and charging-profile send the right OCPP payloads."""
    profile = EXAMPLES["SetChargingProfile"][0]
    async with strict_charger(f"{csms.ocpp_url}/CP-OPS") as charger, csms.api() as api:
        started = await api.post(
            "/sessions/start", json={"chargePointId": "CP-OPS", "connectorId": 2, "idTag": "CARD-9"}
        )
        reset = await api.post("/charge-points/CP-OPS/reset", json={"type": "Hard"})
        unlock = await api.post("/charge-points/CP-OPS/unlock", json={"connectorId": 2})
        shaped = await api.post("/charge-points/CP-OPS/charging-profile", json=profile)
        bad = await api.post("/charge-points/CP-OPS/reset", json={"type": "Sideways"})
        profiles = (await api.get("/charge-points/CP-OPS/charging-profiles")).json()
    assert [r.status_code for r in (started, reset, unlock, shaped, bad)] == [
        200,
        200,
        200,
        200,
        422,
    ]
    assert charger.received == [
        ("RemoteStartTransaction", {"idTag": "CARD-9", "connectorId": 2}),
        ("Reset", {"type": "Hard"}),
        ("UnlockConnector", {"connectorId": 2}),
        ("SetChargingProfile", profile),
    ]
    assert profiles["total"] == 1
    assert profiles["items"][0]["chargingProfileId"] == 1


@pytest.mark.postgres
async def test_profiles_configuration_and_local_list_are_kept(csms: RunningCsms) -> None:
    """Accepted Set/ClearChargingProfile, Get/ChangeConfiguration and SendLocalList are kept."""
    set_profile = EXAMPLES["SetChargingProfile"][0]
    async with strict_charger(f"{csms.ocpp_url}/CP-KEEP") as charger, csms.api() as api:
        base = "/charge-points/CP-KEEP/commands"
        await api.post(f"{base}/SetChargingProfile", json=set_profile)
        await api.post(f"{base}/GetConfiguration", json={})
        await api.post(
            f"{base}/ChangeConfiguration", json={"key": "MeterValueSampleInterval", "value": "60"}
        )
        charger.answers["ChangeConfiguration"] = {"status": "Rejected"}
        await api.post(
            f"{base}/ChangeConfiguration", json={"key": "HeartbeatInterval", "value": "5"}
        )
        await api.post(f"{base}/SendLocalList", json=EXAMPLES["SendLocalList"][0])
        kept_profiles = (await api.get("/charge-points/CP-KEEP/charging-profiles")).json()
        configuration = (await api.get("/charge-points/CP-KEEP/configuration")).json()
        charger_view = (await api.get("/charge-points/CP-KEEP")).json()
        await api.post(
            f"{base}/ClearChargingProfile", json={"chargingProfilePurpose": "TxDefaultProfile"}
        )
        cleared = (await api.get("/charge-points/CP-KEEP/charging-profiles")).json()
    assert kept_profiles["total"] == 1
    assert {item["key"]: item["value"] for item in configuration["items"]} == {
        "HeartbeatInterval": "300",
        "MeterValueSampleInterval": "60",
    }
    assert cleared["total"] == 0
    assert charger_view["localListVersion"] == 5
    assert charger.violations == []


async def test_force_stop_offline_then_the_late_stop_is_reconciled(csms: RunningCsms) -> None:
    """Force stop ends the transaction at once, charger offline; its later Stop counts once."""
    start = {"connectorId": 1, "idTag": "A", "meterStart": 100, "timestamp": "2024-01-01T10:00:00Z"}
    async with csms.charger("CP-FORCE") as cp:
        tx = (await cp.call("StartTransaction", start))["transactionId"]
    async with csms.api() as api:
        forced = await api.post(f"/transactions/{tx}/stop", json={"force": True})
        again = await api.post(f"/transactions/{tx}/stop", json={})
    assert forced.status_code == 200
    body = forced.json()
    assert (body["forced"], body["response"]) == (True, None)
    assert body["transaction"]["status"] == "completed"
    assert body["transaction"]["stopReason"] == "Forced"
    assert "forced_stop" in body["transaction"]["flags"]
    assert again.status_code == 409
    stop = {"transactionId": tx, "meterStop": 900, "timestamp": "2024-01-01T11:00:00Z"}
    async with csms.charger("CP-FORCE", boot=False) as cp:
        assert await cp.call("StopTransaction", stop) == {}
        assert await cp.call("StopTransaction", stop) == {}
    async with csms.api() as api:
        final = (await api.get(f"/transactions/{tx}")).json()
    assert (final["meterStop"], final["energyWh"], final["stopReason"]) == (900, 800.0, "Local")


async def test_remote_stop_sends_the_transaction_id(csms: RunningCsms) -> None:
    """A normal stop sends RemoteStopTransaction for the transaction to its charger."""
    async with strict_charger(f"{csms.ocpp_url}/CP-RSTOP") as charger, csms.api() as api:
        start = {
            "connectorId": 1,
            "idTag": "A",
            "meterStart": 0,
            "timestamp": "2024-01-01T10:00:00Z",
        }
        tx = (await charger.call("StartTransaction", start))["transactionId"]
        stopped = await api.post(f"/transactions/{tx}/stop", json={"force": False})
        missing = await api.post("/transactions/999999/stop", json={})
    assert stopped.status_code == 200
    assert stopped.json()["response"] == {"status": "Accepted"}
    assert charger.received == [("RemoteStopTransaction", {"transactionId": tx})]
    assert missing.status_code == 404


@pytest.mark.postgres
async def test_reservations_expire_cancel_and_complete(csms: RunningCsms) -> None:
    """Reservations go active -> expired on time, -> canceled, and -> done when the tag starts."""
    expired_seen = asyncio.Event()
    csms.app.reservations.listeners.append(lambda rows: expired_seen.set())
    soon = (datetime.now(UTC) + timedelta(seconds=300 * MS)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with strict_charger(f"{csms.ocpp_url}/CP-RES") as charger, csms.api() as api:
        short = await api.post(
            "/charge-points/CP-RES/reserve",
            json={"connectorId": 1, "idTag": "T1", "expiryDate": soon},
        )
        for_cancel = await api.post(
            "/charge-points/CP-RES/reserve",
            json={"connectorId": 2, "idTag": "T2", "expiryDate": later},
        )
        for_use = await api.post(
            "/charge-points/CP-RES/reserve",
            json={"connectorId": 3, "idTag": "T3", "expiryDate": later},
        )
        assert {short.status_code, for_cancel.status_code, for_use.status_code} == {200}
        ids = [payload["reservationId"] for action, payload in charger.received]
        async with asyncio.timeout(10_000 * MS):
            await expired_seen.wait()
        await api.post(
            "/charge-points/CP-RES/commands/CancelReservation", json={"reservationId": ids[1]}
        )
        start = {"connectorId": 3, "idTag": "T3", "meterStart": 0, "timestamp": later}
        tx = (await charger.call("StartTransaction", start))["transactionId"]
        listed = (await api.get("/reservations", params={"chargePointId": "CP-RES"})).json()
    assert charger.violations == []
    by_id = {item["reservationId"]: item for item in listed["items"]}
    assert [by_id[i]["status"] for i in ids] == ["expired", "canceled", "done"]
    assert by_id[ids[2]]["transactionId"] == tx


async def test_rejected_reservation_is_not_kept(csms: RunningCsms) -> None:
    """A ReserveNow the charger refuses leaves no reservation behind."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with strict_charger(f"{csms.ocpp_url}/CP-REJ") as charger, csms.api() as api:
        charger.answers["ReserveNow"] = {"status": "Occupied"}
        response = await api.post(
            "/charge-points/CP-REJ/reserve",
            json={"connectorId": 1, "idTag": "T", "expiryDate": later},
        )
        listed = (await api.get("/reservations")).json()
    assert response.json()["response"] == {"status": "Occupied"}
    assert listed["total"] == 0


async def test_answer_breaking_the_schema_gives_502_and_changes_nothing(
    csms: RunningCsms,
) -> None:
    """A CALLRESULT off the .conf schema is a 502 naming the violation, recorded, not acted on."""
    async with strict_charger(f"{csms.ocpp_url}/CP-BAD") as charger, csms.api() as api:
        charger.invalid_answers["Reset"] = {"status": "Maybe"}
        charger.invalid_answers["GetConfiguration"] = {
            "configurationKey": [{"key": "A", "value": 1}]
        }
        reset = await api.post("/charge-points/CP-BAD/commands/Reset", json={"type": "Soft"})
        config = await api.post("/charge-points/CP-BAD/commands/GetConfiguration", json={})
        after = await api.post("/charge-points/CP-BAD/commands/ClearCache", json={})
        records = (await api.get("/charge-points/CP-BAD/commands")).json()["items"]
        stored = (await api.get("/charge-points/CP-BAD/configuration")).json()
    assert (reset.status_code, config.status_code, after.status_code) == (502, 502, 200)
    assert "Reset.conf /status" in reset.json()["errorDescription"]
    assert reset.json()["errorCode"] == "PropertyConstraintViolation"
    assert "GetConfiguration.conf" in config.json()["errorDescription"]
    assert [item["outcome"] for item in records] == ["ok", "invalid", "invalid"]
    assert records[2]["response"] == {"status": "Maybe"}
    assert stored["total"] == 0
