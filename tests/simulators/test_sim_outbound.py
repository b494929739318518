"""Everything the simulator sends is valid OCPP 1.6, and scripted scenarios play out right."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.clock import iso
from simulators.config import MEASURANDS
from simulators.ocppj import validate_request, validate_response
from simulators.power import PowerCurve
from simulators.scenario import Scenario, plan_charger
from simulators.testing import SIM_EPOCH, Bench, make_station

PROFILE = {
    "chargingProfileId": 8,
    "stackLevel": 2,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Recurring",
    "recurrencyKind": "Daily",
    "chargingSchedule": {
        "startSchedule": iso(SIM_EPOCH),
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10.0},
            {"startPeriod": 7200, "limit": 16.5, "numberPhases": 1},
        ],
    },
}

# Every central-system action with a valid payload (run in this order).
COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("GetConfiguration", {}),
    ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "120"}),
    ("ClearCache", {}),
    ("DataTransfer", {"vendorId": "SimVendor", "messageId": "Echo", "data": "x"}),
    ("SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": []}),
    ("GetLocalListVersion", {}),
    ("SetChargingProfile", {"connectorId": 0, "csChargingProfiles": PROFILE}),
    ("GetCompositeSchedule", {"connectorId": 1, "duration": 86400, "chargingRateUnit": "A"}),
    ("GetCompositeSchedule", {"connectorId": 0, "duration": 3600}),
    (
        "ReserveNow",
        {"connectorId": 2, "expiryDate": iso(SIM_EPOCH + 7200), "idTag": "R", "reservationId": 1},
    ),
    ("CancelReservation", {"reservationId": 1}),
    ("RemoteStartTransaction", {"idTag": "REMOTE", "connectorId": 2}),
    ("TriggerMessage", {"requestedMessage": "MeterValues"}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification"}),
    ("TriggerMessage", {"requestedMessage": "BootNotification"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}),
    ("TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}),
    ("GetDiagnostics", {"location": "ftp://logs.example/"}),
    ("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}),
    ("ChangeAvailability", {"connectorId": 1, "type": "Operative"}),
    ("UnlockConnector", {"connectorId": 2}),
    ("ClearChargingProfile", {}),
    ("UpdateFirmware", {"location": "https://fw.example/2.1.bin", "retrieveDate": iso(SIM_EPOCH)}),
    ("Reset", {"type": "Soft"}),
    ("Reset", {"type": "Hard"}),
]


def check_all_valid(bench: Bench, sent_by_csms: dict[str, str]) -> None:
    """Every CALL and every answer the station put on the wire matches the 1.6 schemas."""
    problems = []
    for frame in bench.frames:
        if frame[0] == 2:
            violation = validate_request(frame[2], frame[3])
        elif frame[0] == 3:
            violation = validate_response(sent_by_csms[frame[1]], frame[2])
        else:
            violation = None
            problems.append(f"CALLERROR sent: {frame}")
        if violation is not None:
            problems.append(f"{frame}: {violation.description}")
    assert problems == []
    assert bench.station.stats.protocol_errors == 0, bench.station.stats.errors


def test_a_busy_day_sends_only_valid_payloads() -> None:
    """Every measurand, clock-aligned data, faults and every command: all schema-valid."""
    scenario = Scenario.load("faults")
    config = {
        "MeterValuesSampledData": ",".join(sorted(MEASURANDS)),
        "MeterValuesAlignedData": ",".join(sorted(MEASURANDS)),
        "StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import,SoC",
        "ClockAlignedDataInterval": 900,
        "MeterValueSampleInterval": 300,
    }
    station = make_station(
        "DAY-1", 2, plan=plan_charger(scenario, 1, "DAY-1", 2), config=config, call_timeout=30.0
    )
    bench = Bench(station).start()
    sent_by_csms: dict[str, str] = {}
    bench.advance(3 * 3600)
    for action, payload in COMMANDS:
        frame = bench.send(action, payload)
        sent_by_csms[frame[1]] = action
        bench.advance(600)
    bench.advance(9 * 3600)
    station.shutdown(bench.now)
    bench.advance(60)
    assert station.done
    actions = {c.action for c in bench.calls}
    assert actions >= {
        "BootNotification",
        "StatusNotification",
        "Heartbeat",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "FirmwareStatusNotification",
        "DiagnosticsStatusNotification",
    }
    check_all_valid(bench, sent_by_csms)


@pytest.mark.parametrize("connectors", [1, 3])
def test_commuter_plan_energy_matches_the_curve(connectors: int) -> None:
    """A commuter day on the bench: one session per connector, energy exactly from the curve."""
    scenario = Scenario.load("commute")
    plan = plan_charger(scenario, 4, "COMMUTE-4", connectors)
    station = make_station(
        "COMMUTE-4", connectors, plan=plan, config=scenario.config_map, validate_outbound=True
    )
    bench = Bench(station).start()
    bench.advance(24 * 3600)
    assert station.finished_script
    records = sorted(station.completed, key=lambda r: r.connector_id)
    assert [r.connector_id for r in records] == list(range(1, connectors + 1))
    for record, visits in zip(records, plan.sessions, strict=True):
        visit = visits[0]
        curve = PowerCurve(visit.battery_wh, visit.ev_max_power_w)
        expected = curve.charge(
            visit.soc_start, visit.dwell, station.electrical.max_power_w, visit.soc_target
        )
        assert record.energy_wh == pytest.approx(expected.energy_wh, rel=1e-9)
        assert abs(record.metered_wh - record.energy_wh) <= 1.0
        assert record.stopped_at - record.started_at == pytest.approx(visit.dwell)
    stops = bench.sent("StopTransaction")
    starts = bench.sent("StartTransaction")
    assert sorted(
        s["meterStop"] - t["meterStart"] for s, t in zip(stops, starts, strict=True)
    ) == sorted(r.metered_wh for r in records)
    check_all_valid(bench, {})
