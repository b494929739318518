"""The charger state machine on a bench: protocol rules, queueing, and CS->CP actions
(those about sessions are in test_sim_sessions.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from simulators.clock import iso
from simulators.ocppj import ErrorCode
from simulators.scenario import FaultKind, PlannedFault
from simulators.station import CloseMode, EvSpec, Registration, StopReason
from simulators.testing import SIM_EPOCH, Bench, make_station
from tests.simulators.helpers import EV, answer_ok, plug

# --- boot, heartbeat, registration ------------------------------------------------------


def test_boot_then_status_of_every_connector(bench: Bench) -> None:
    """A fresh charger sends BootNotification first, then a status for connector 0..n."""
    assert bench.actions() == ["BootNotification"] + ["StatusNotification"] * 3
    assert [p["connectorId"] for p in bench.sent("StatusNotification")] == [0, 1, 2]
    boot = bench.sent("BootNotification")[0]
    assert boot["chargePointVendor"] == "SimVendor"
    assert boot["chargePointSerialNumber"] == "SN-1"
    assert bench.station.registration is Registration.ACCEPTED


def test_nothing_but_boot_until_accepted() -> None:
    """While Pending, only BootNotification is retried (after the interval); then statuses."""
    bench = Bench(make_station())
    bench.answers["BootNotification"] = {
        "status": "Pending",
        "currentTime": iso(SIM_EPOCH),
        "interval": 30,
    }
    bench.start()
    bench.station.plug_in(1, "T", bench.now, ev=EV)
    bench.advance(29)
    assert bench.actions() == ["BootNotification"]
    bench.answers["BootNotification"] = {
        "status": "Accepted",
        "currentTime": iso(SIM_EPOCH),
        "interval": 60,
    }
    bench.advance(2)
    assert bench.actions()[:2] == ["BootNotification", "BootNotification"]
    assert "StatusNotification" in bench.actions()
    assert bench.station.config.get_int("HeartbeatInterval") == 60


def test_heartbeats_follow_boot_interval_then_configuration(bench: Bench) -> None:
    """Heartbeats come every Boot interval, then every HeartbeatInterval once it is changed."""
    start = len(bench.calls)
    bench.advance(300 * 3 + 1)
    assert bench.actions(start).count("Heartbeat") == 3
    assert (
        answer_ok(bench, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "20"})[
            "status"
        ]
        == "Accepted"
    )
    start = len(bench.calls)
    bench.advance(100.5)
    assert bench.actions(start).count("Heartbeat") == 5


def test_reconnect_does_not_boot_again(bench: Bench) -> None:
    """After a dropped connection the charger reconnects (with backoff) without BootNotification."""
    bench.disconnect(offline=False)
    start = len(bench.calls)
    bench.advance(2)
    assert bench.station.connected
    assert "BootNotification" not in bench.actions(start)
    assert bench.station.stats.connects == 2


def test_reconnect_on_request_reopens_at_once_without_boot() -> None:
    """reconnect() closes gracefully and reopens at once, even without auto reconnect;
    no new BootNotification, and queued transaction messages go out on the new connection."""
    bench = Bench(make_station(auto_reconnect=False)).start()
    bench.silent.add("StartTransaction")
    plug(bench, 1, authorize=False)
    start = len(bench.calls)
    bench.station.reconnect(bench.now)
    assert bench.station.close_request is CloseMode.GRACEFUL
    bench.silent.clear()
    bench.pump()
    assert bench.station.connected
    assert bench.station.stats.connects == 2
    assert bench.actions(start) == ["StartTransaction", "StatusNotification"]
    assert bench.statuses(1)[-1] == "Charging"  # reported again, as after any reconnect


def test_reconnect_reports_only_statuses_that_changed(bench: Bench) -> None:
    """Statuses that changed while offline are reported after reconnecting, the others not."""
    bench.disconnect()
    plug(bench, 2, ev=EvSpec(soc_start=0.2), authorize=False)
    bench.advance(5)
    start = len(bench.calls)
    bench.reconnect()
    bench.advance(40)
    statuses = [
        (c.payload["connectorId"], c.payload["status"])
        for c in bench.calls[start:]
        if c.action == "StatusNotification"
    ]
    assert statuses == [(2, "Charging")]


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 10, 40])
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int) -> None:
    """Reconnect delays double per failed attempt, with jitter, capped at 30 s by default."""
    station = make_station()
    station.connection.failed_attempts = attempt
    ceiling = min(30.0, 1.0 * 2**attempt)
    delays = [station.connection.backoff() for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 10


def test_failed_connection_attempts_back_off() -> None:
    """While the central system is unreachable, attempts space out up to the cap."""
    bench = Bench(make_station(), online=False).start()
    bench.advance(600)
    failures = bench.station.stats.connect_failures
    assert 20 <= failures <= 35


# --- one CALL at a time, crossing CALLs, bad frames ----------------------------------


def test_one_call_outstanding_and_crossing_call_answered(bench: Bench) -> None:
    """Our CALLs wait for the one in flight; a CALL from the CSMS meanwhile is still answered."""
    bench.silent.add("StartTransaction")
    plug(bench, 1, authorize=False)
    bench.advance(10)
    held = bench.held[0]
    assert bench.calls[-1] is held  # nothing after the unanswered StartTransaction
    assert (
        answer_ok(bench, "GetConfiguration", {"key": ["HeartbeatInterval"]})["configurationKey"][0][
            "value"
        ]
        == "300"
    )
    assert bench.calls[-1] is held
    bench.answer(held, {"transactionId": 77, "idTagInfo": {"status": "Accepted"}})
    assert bench.calls[-1].action == "StatusNotification"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"type": "Hard", "extra": True}, ErrorCode.FORMATION_VIOLATION),
        ({}, ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION),
        ({"type": 1}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ({"type": "Now"}, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
    ],
)
def test_invalid_call_gets_callerror(
    bench: Bench, payload: dict[str, Any], code: ErrorCode
) -> None:
    """An invalid CALL is answered with the right CALLERROR and nothing happens."""
    frame = bench.send("Reset", payload)
    assert frame[0] == 4
    assert frame[2] == code.value
    assert bench.station.connected


@pytest.mark.parametrize(
    ("action", "code", "security_extension"),
    [
        ("GetVariables", "NotImplemented", True),
        ("InstallCertificate", "NotSupported", False),
    ],
)
def test_unknown_actions(action: str, code: str, security_extension: bool) -> None:
    """Unknown actions get NotImplemented; security ones NotSupported without the extension."""
    bench = Bench(make_station(security_extension=security_extension)).start()
    frame = bench.send(action, {})
    assert frame[:3] == [4, frame[1], code]


def test_bad_frames_are_protocol_errors(bench: Bench) -> None:
    """Garbage and answers to nothing count as protocol errors without killing the charger."""
    bench.send_raw(b"hello")
    bench.send_raw(orjson.dumps([3, "nobody-asked", {}]))
    bench.send_raw(orjson.dumps([2, "x1", "Reset"]))
    assert bench.station.stats.protocol_errors == 3
    assert bench.replies["x1"][2] == "FormationViolation"


# --- transactions, offline queue, retries --------------------------------------------


def test_session_messages_in_order(bench: Bench) -> None:
    """Plug-in to unplug in order; the meter register adds up to meterStop - meterStart."""
    start = len(bench.calls)
    plug(bench, 1, dwell=3600.0, unplug_after=120.0)
    bench.advance(3600 + 200)
    actions = [a for a in bench.actions(start) if a != "Heartbeat"]
    assert actions[:4] == [
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "StatusNotification",
    ]
    assert actions.count("MeterValues") == 59  # every 60 s until the stop at 3600 s
    assert actions[-3:] == ["StopTransaction", "StatusNotification", "StatusNotification"]
    assert bench.statuses(1)[1:] == ["Preparing", "Charging", "Finishing", "Available"]
    start_tx = bench.sent("StartTransaction")[0]
    stop_tx = bench.sent("StopTransaction")[0]
    registers = [
        int(sv["value"])
        for p in bench.sent("MeterValues")
        for sv in p["meterValue"][0]["sampledValue"]
        if sv["measurand"] == "Energy.Active.Import.Register"
    ]
    assert registers == sorted(registers)
    assert start_tx["meterStart"] <= registers[0] <= registers[-1] <= stop_tx["meterStop"]
    assert stop_tx["meterStop"] - start_tx["meterStart"] == 11_000
    assert stop_tx["reason"] == "Local"
    record = bench.station.completed[0]
    assert record.metered_wh == 11_000
    assert record.energy_wh == pytest.approx(11_000.0)


def test_offline_queue_keeps_order_and_replays(bench: Bench) -> None:
    """Offline, transaction messages queue (others are dropped) and replay in order."""
    plug(bench, 1, authorize=False)
    bench.advance(30)
    bench.disconnect()
    bench.advance(200)  # three samples while offline
    bench.station.stop_session(1, bench.now)
    bench.advance(100)
    assert bench.station.queued_transactional == 4
    start = len(bench.calls)
    bench.reconnect()
    bench.advance(35)
    replay = [a for a in bench.actions(start) if a in ("MeterValues", "StopTransaction")]
    assert replay == ["MeterValues"] * 3 + ["StopTransaction"]
    stamps = [
        c.payload.get("timestamp") or c.payload["meterValue"][0]["timestamp"]
        for c in bench.calls[start : start + 4]
    ]
    assert stamps == sorted(stamps)
    assert all(c.payload["transactionId"] == 1 for c in bench.calls[start : start + 4])
    assert bench.station.queued_transactional == 0


def test_start_offline_gets_transaction_id_on_replay() -> None:
    """A transaction started offline: its MeterValues and Stop carry the id from the late Start."""
    bench = Bench(make_station(config={"AllowOfflineTxForUnknownId": True})).start()
    bench.answers["StartTransaction"] = {"transactionId": 555, "idTagInfo": {"status": "Accepted"}}
    bench.disconnect()
    plug(bench, 1)
    bench.advance(130)
    bench.station.stop_session(1, bench.now)
    start = len(bench.calls)
    bench.reconnect()
    bench.advance(35)
    tx_calls = [
        c
        for c in bench.calls[start:]
        if c.action in ("StartTransaction", "MeterValues", "StopTransaction")
    ]
    assert [c.action for c in tx_calls] == [
        "StartTransaction",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
    ]
    assert all(c.payload["transactionId"] == 555 for c in tx_calls[1:])


def test_unanswered_transaction_message_is_retried_then_dropped() -> None:
    """Unanswered Start: resent per Attempts/RetryInterval, dropped, then Stop carries id -1."""
    station = make_station(
        config={"TransactionMessageAttempts": 3, "TransactionMessageRetryInterval": 10},
        call_timeout=5.0,
    )
    bench = Bench(station).start()
    bench.silent.add("StartTransaction")
    plug(bench, 1, authorize=False)
    bench.advance(5 + 10 + 5 + 20 + 5 + 1)
    starts = [c for c in bench.calls if c.action == "StartTransaction"]
    assert len(starts) == 3
    assert station.stats.timeouts == 3
    assert station.stats.retries == 2
    assert station.stats.dropped_messages == 1
    bench.silent.clear()
    bench.held.clear()
    station.stop_session(1, bench.now)
    bench.pump()
    assert bench.sent("StopTransaction")[0]["transactionId"] == -1


def test_callerror_on_transaction_message_is_retried(bench: Bench) -> None:
    """A CALLERROR for StartTransaction (e.g. storage down) makes the charger send it again."""
    bench.silent.add("StartTransaction")
    plug(bench, 1, authorize=False)
    bench.fail(bench.held[0], "InternalError", "retry later")
    bench.silent.clear()
    bench.advance(61)
    assert len(bench.sent("StartTransaction")) == 2
    assert bench.station.session(1).transaction_id == 1  # type: ignore[union-attr]


def test_non_transaction_call_lost_on_disconnect(bench: Bench) -> None:
    """A Heartbeat (not a transaction message) in flight is not resent after reconnect."""
    bench.silent.add("Heartbeat")
    bench.advance(301)
    assert len(bench.held) == 1
    bench.disconnect(offline=False)
    bench.silent.clear()
    start = len(bench.calls)
    bench.advance(3)
    assert bench.actions(start) == []


# --- CS -> CP actions ------------------------------------------------------------------


def test_soft_reset_stops_sessions_then_reboots(bench: Bench) -> None:
    """Soft reset: StopTransaction (SoftReset) first, then reconnect and BootNotification."""
    plug(bench, 1)
    start = len(bench.calls)
    assert answer_ok(bench, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    bench.advance(1)
    actions = bench.actions(start)
    assert actions.index("StopTransaction") < actions.index("BootNotification")
    assert bench.sent("StopTransaction")[-1]["reason"] == "SoftReset"
    assert bench.station.stats.connects == 2


def test_hard_reset_drops_sessions_and_reports_after_boot(bench: Bench) -> None:
    """Hard reset: the connection drops at once; after BootNotification the Stop (HardReset)."""
    plug(bench, 1)
    start = len(bench.calls)
    assert answer_ok(bench, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
    bench.advance(1)
    actions = bench.actions(start)
    assert actions[0] == "BootNotification"
    assert actions.index("BootNotification") < actions.index("StopTransaction")
    assert bench.sent("StopTransaction")[-1]["reason"] == "HardReset"


def test_change_availability(bench: Bench) -> None:
    """Inoperative: Unavailable (Scheduled during a transaction); Operative undoes it."""
    assert (
        answer_ok(bench, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"})["status"]
        == "Accepted"
    )
    assert bench.statuses(2)[-1] == "Unavailable"
    plug(bench, 1)
    assert (
        answer_ok(bench, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})["status"]
        == "Scheduled"
    )
    assert bench.statuses(1)[-1] == "Charging"
    bench.station.unplug(1, bench.now)
    bench.pump()
    assert bench.statuses(1)[-1] == "Unavailable"
    assert (
        answer_ok(bench, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})["status"]
        == "Accepted"
    )
    assert bench.statuses(1)[-1] == "Available"
    assert bench.statuses(2)[-1] == "Available"
    assert (
        answer_ok(bench, "ChangeAvailability", {"connectorId": 5, "type": "Operative"})["status"]
        == "Rejected"
    )


def test_meter_values_follow_sample_interval_and_sampled_data(bench: Bench) -> None:
    """MeterValueSampleInterval and MeterValuesSampledData take effect during a session."""
    plug(bench, 1)
    answer_ok(bench, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "10"})
    answer_ok(
        bench,
        "ChangeConfiguration",
        {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,Voltage,SoC"},
    )
    before = len(bench.sent("MeterValues"))
    bench.advance(100.5)
    samples = bench.sent("MeterValues")[before:]
    assert len(samples) == 10
    measurands = [sv["measurand"] for sv in samples[-1]["meterValue"][0]["sampledValue"]]
    assert measurands == ["Energy.Active.Import.Register", "Voltage", "SoC"]
    frame = bench.send("ChangeConfiguration", {"key": "MeterValuesSampledData", "value": "Nope"})
    assert frame[2] == {"status": "Rejected"}


def test_get_configuration(bench: Bench) -> None:
    """GetConfiguration reports the live key store, unknown keys apart."""
    result = answer_ok(bench, "GetConfiguration", {"key": ["NumberOfConnectors", "Foo"]})
    assert result == {
        "configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "2"}],
        "unknownKey": ["Foo"],
    }


@pytest.mark.parametrize(
    ("message", "connector", "expected"),
    [
        ("BootNotification", None, ["BootNotification"]),
        ("Heartbeat", None, ["Heartbeat"]),
        ("StatusNotification", 1, ["StatusNotification"]),
        ("StatusNotification", None, ["StatusNotification"] * 3),
        ("MeterValues", 2, ["MeterValues"]),
        ("FirmwareStatusNotification", None, ["FirmwareStatusNotification"]),
        ("DiagnosticsStatusNotification", None, ["DiagnosticsStatusNotification"]),
    ],
)
def test_trigger_message(
    bench: Bench, message: str, connector: int | None, expected: list[str]
) -> None:
    """TriggerMessage is Accepted and the requested message follows the answer."""
    payload: dict[str, Any] = {"requestedMessage": message}
    if connector is not None:
        payload["connectorId"] = connector
    start = len(bench.calls)
    assert answer_ok(bench, "TriggerMessage", payload) == {"status": "Accepted"}
    assert bench.actions(start) == expected
    answered = next(i for i, f in enumerate(bench.frames) if f[0] == 3 and f[1].startswith("csms"))
    first = bench.calls[start]
    assert answered < bench.frames.index([2, first.unique_id, first.action, first.payload])


def test_trigger_message_bad_connector(bench: Bench) -> None:
    """TriggerMessage for a connector that does not exist is Rejected."""
    assert answer_ok(
        bench, "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 7}
    ) == {"status": "Rejected"}


def test_update_firmware_notifications_and_reboot(bench: Bench) -> None:
    """UpdateFirmware: Downloading, Downloaded, Installing, reboot with new version, Installed."""
    payload = {
        "location": "https://fw.example/sim-2.0.0.bin",
        "retrieveDate": iso(SIM_EPOCH + bench.now + 5),
    }
    assert answer_ok(bench, "UpdateFirmware", payload) == {}
    bench.advance(60)
    statuses = [p["status"] for p in bench.sent("FirmwareStatusNotification")]
    assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
    boots = bench.sent("BootNotification")
    assert boots[-1]["firmwareVersion"] == "sim-2.0.0"
    assert len(boots) == 2


def test_update_firmware_bad_location(bench: Bench) -> None:
    """A location that cannot be downloaded reports DownloadFailed."""
    answer_ok(bench, "UpdateFirmware", {"location": "nowhere", "retrieveDate": iso(SIM_EPOCH)})
    bench.advance(1)
    assert [p["status"] for p in bench.sent("FirmwareStatusNotification")] == ["DownloadFailed"]


def test_get_diagnostics(bench: Bench) -> None:
    """GetDiagnostics names a file and reports Uploading then Uploaded."""
    result = answer_ok(bench, "GetDiagnostics", {"location": "ftp://logs.example/up"})
    assert result["fileName"].startswith("diagnostics-BENCH-1-")
    bench.advance(10)
    assert [p["status"] for p in bench.sent("DiagnosticsStatusNotification")] == [
        "Uploading",
        "Uploaded",
    ]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"vendorId": "SimVendor", "messageId": "Echo", "data": "hi"},
            {"status": "Accepted", "data": "hi"},
        ),
        ({"vendorId": "SimVendor"}, {"status": "Accepted"}),
        ({"vendorId": "SimVendor", "messageId": "Other"}, {"status": "UnknownMessageId"}),
        ({"vendorId": "Acme"}, {"status": "UnknownVendorId"}),
    ],
)
def test_data_transfer(bench: Bench, payload: dict[str, Any], expected: dict[str, Any]) -> None:
    """DataTransfer echoes for our vendor and refuses other vendors and message ids."""
    assert answer_ok(bench, "DataTransfer", payload) == expected


def test_charging_profile_shapes_power_and_composite(bench: Bench) -> None:
    """Set/Clear charging profiles change the simulated power; GetCompositeSchedule reports them."""
    plug(bench, 1, ev=EvSpec(60_000.0, 22_000.0, 0.2, 1.0))
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 3,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "startSchedule": iso(SIM_EPOCH + bench.now),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 7000.0},
                    {"startPeriod": 120, "limit": 0.0},
                ],
            },
        },
    }
    assert answer_ok(bench, "SetChargingProfile", profile) == {"status": "Accepted"}
    composite = answer_ok(
        bench, "GetCompositeSchedule", {"connectorId": 1, "duration": 600, "chargingRateUnit": "W"}
    )
    assert composite["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 7000.0},
        {"startPeriod": 120, "limit": 0.0},
    ]
    bench.advance(181)
    power = [
        float(sv["value"])
        for p in bench.sent("MeterValues")
        for sv in p["meterValue"][0]["sampledValue"]
        if sv["measurand"] == "Power.Active.Import"
    ]
    assert power == [7000.0, 0.0, 0.0]
    assert bench.statuses(1)[-1] == "SuspendedEVSE"
    assert answer_ok(bench, "ClearChargingProfile", {"id": 3}) == {"status": "Accepted"}
    assert answer_ok(bench, "ClearChargingProfile", {"id": 3}) == {"status": "Unknown"}
    assert bench.statuses(1)[-1] == "Charging"
    assert answer_ok(bench, "GetCompositeSchedule", {"connectorId": 4, "duration": 60}) == {
        "status": "Rejected"
    }


def test_full_ev_is_suspended_ev(bench: Bench) -> None:
    """Once the EV reaches its target the connector reports SuspendedEV and power is zero."""
    plug(bench, 1, ev=EvSpec(10_000.0, 11_000.0, 0.7, 0.8))
    bench.advance(600)
    assert bench.statuses(1)[-1] == "SuspendedEV"
    record = bench.station.session(1)
    assert record is not None
    assert record.energy_wh == pytest.approx(1000.0)


# --- faults, shutdown ----------------------------------------------------------------


def test_faulted_with_vendor_code_stops_charging(bench: Bench) -> None:
    """A fault reports Faulted with its error codes, stops the transaction, and clears later."""
    plug(bench, 1)
    fault = PlannedFault(FaultKind.FAULTED, 0.0, 120.0, 1, "GroundFailure", "E-GF-1", "leak")
    bench.station.inject_fault(fault, bench.now)
    bench.pump()
    status = bench.sent("StatusNotification")[-1]
    assert status["status"] == "Faulted"
    assert (status["errorCode"], status["vendorErrorCode"], status["info"]) == (
        "GroundFailure",
        "E-GF-1",
        "leak",
    )
    assert bench.sent("StopTransaction")[-1]["reason"] == "Other"
    bench.advance(121)
    assert bench.statuses(1)[-1] == "Finishing"


def test_power_cut_reboots_and_reports_power_loss(bench: Bench) -> None:
    """After a power cut: reconnect, BootNotification, then StopTransaction with PowerLoss."""
    plug(bench, 1)
    start = len(bench.calls)
    bench.station.inject_fault(
        PlannedFault(FaultKind.POWER_CUT, 0.0, 30.0, 0, "", "", ""), bench.now
    )
    bench.advance(29)
    assert not bench.station.connected
    bench.advance(2)
    actions = bench.actions(start)
    assert actions[0] == "BootNotification"
    assert bench.sent("StopTransaction")[-1]["reason"] == "PowerLoss"


def test_shutdown_stops_sessions_cleanly(bench: Bench) -> None:
    """At the end of a run open sessions are stopped with reason Local, then the charger closes."""
    plug(bench, 1)
    plug(bench, 2, tag="TAG2")
    bench.advance(5)
    bench.station.shutdown(bench.now, StopReason.local)
    bench.pump()
    assert [p["reason"] for p in bench.sent("StopTransaction")] == ["Local", "Local"]
    assert bench.station.done
    assert not bench.station.connected


def test_late_answer_after_timeout_is_not_a_protocol_error() -> None:
    """An answer arriving after its CALL timed out counts as late, not as a protocol error."""
    bench = Bench(make_station(call_timeout=5.0)).start()
    bench.silent.add("Heartbeat")
    bench.advance(306)
    late = bench.held.pop()
    assert bench.station.stats.timeouts == 1
    bench.send_raw(orjson.dumps([3, late.unique_id, {"currentTime": iso(SIM_EPOCH)}]))
    assert bench.station.stats.late_answers == 1
    assert bench.station.stats.protocol_errors == 0


def test_websocket_ping_interval() -> None:
    """WebSocketPingInterval asks the shell for a websocket ping every interval (real seconds)."""
    bench = Bench(make_station()).start()
    station = bench.station
    assert (
        answer_ok(bench, "ChangeConfiguration", {"key": "WebSocketPingInterval", "value": "30"})[
            "status"
        ]
        == "Accepted"
    )
    pings = 0
    for _ in range(10):
        bench.advance(10)
        if station.ping_requested:
            pings += 1
            station.ping_requested = False
    assert pings == 3
