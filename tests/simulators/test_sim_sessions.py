"""EV sessions on a bench: remote start and stop, unlock, reservations, local authorization."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.clock import iso
from simulators.station import ConnectorStatus
from simulators.testing import SIM_EPOCH, Bench, make_station
from tests.simulators.helpers import EV, answer_ok, plug

# --- remote start and stop, unlock ------------------------------------------------------


@pytest.mark.parametrize("authorize_remote", [True, False])
def test_remote_start_runs_a_real_session(authorize_remote: bool) -> None:
    """RemoteStart starts a simulated session, Authorizing first when AuthorizeRemoteTxRequests."""
    bench = Bench(make_station(config={"AuthorizeRemoteTxRequests": authorize_remote})).start()
    start = len(bench.calls)
    assert answer_ok(bench, "RemoteStartTransaction", {"idTag": "R1", "connectorId": 2}) == {
        "status": "Accepted"
    }
    bench.advance(61)
    actions = bench.actions(start)
    expected = ["StatusNotification", "Authorize", "StartTransaction"]
    if not authorize_remote:
        expected.remove("Authorize")
    assert actions[: len(expected)] == expected
    assert "MeterValues" in actions
    assert bench.station.status_of(2) is ConnectorStatus.charging


def test_remote_start_rejections(bench: Bench) -> None:
    """Busy connectors, unknown connectors and non-TxProfile profiles are rejected."""
    plug(bench, 1)
    assert (
        answer_ok(bench, "RemoteStartTransaction", {"idTag": "R", "connectorId": 1})["status"]
        == "Rejected"
    )
    assert (
        answer_ok(bench, "RemoteStartTransaction", {"idTag": "R", "connectorId": 9})["status"]
        == "Rejected"
    )
    bad = {
        "idTag": "R",
        "chargingProfile": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}],
            },
        },
    }
    assert answer_ok(bench, "RemoteStartTransaction", bad)["status"] == "Rejected"
    assert answer_ok(bench, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Accepted"
    bench.pump()
    assert bench.station.session(2) is not None


@pytest.mark.parametrize("connector_id", [1, None])
def test_remote_start_in_finishing_starts_again(connector_id: int | None) -> None:
    """RemoteStart while Finishing (EV still plugged) is Accepted: Finishing -> Preparing ->
    Charging with a new transaction (OCPP 1.6 §4.9)."""
    bench = Bench(make_station(connectors=1)).start()
    plug(bench, 1, dwell=None)
    assert bench.station.stop_session(1, bench.now)
    bench.pump()
    assert bench.statuses(1)[-1] == "Finishing"
    request: dict[str, Any] = {"idTag": "AGAIN"}
    if connector_id is not None:
        request["connectorId"] = connector_id
    assert answer_ok(bench, "RemoteStartTransaction", request) == {"status": "Accepted"}
    bench.advance(1)
    assert bench.statuses(1)[-3:] == ["Finishing", "Preparing", "Charging"]
    assert [p["idTag"] for p in bench.sent("StartTransaction")] == ["TAG1", "AGAIN"]
    session = bench.station.session(1)
    assert session is not None
    assert session.transaction_id == 2
    assert session.remote


def test_remote_start_prefers_an_available_connector_to_a_finishing_one(bench: Bench) -> None:
    """Without connectorId, RemoteStart goes to a free connector before a Finishing one."""
    plug(bench, 1)
    bench.station.stop_session(1, bench.now)
    bench.pump()
    assert answer_ok(bench, "RemoteStartTransaction", {"idTag": "R"})["status"] == "Accepted"
    bench.pump()
    assert bench.statuses(1)[-1] == "Finishing"
    assert bench.statuses(2)[-1] == "Charging"


def test_remote_start_with_tx_profile_limits_power(bench: Bench) -> None:
    """A TxProfile given with RemoteStart caps the power seen in the meter values."""
    body = {
        "idTag": "R",
        "connectorId": 1,
        "chargingProfile": {
            "chargingProfileId": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0}],
            },
        },
    }
    assert answer_ok(bench, "RemoteStartTransaction", body)["status"] == "Accepted"
    bench.advance(61)
    power = [
        float(sv["value"])
        for p in bench.sent("MeterValues")
        for sv in p["meterValue"][0]["sampledValue"]
        if sv["measurand"] == "Power.Active.Import"
    ]
    assert power == [pytest.approx(6.0 * 230 * 3)]


def test_remote_stop(bench: Bench) -> None:
    """RemoteStop ends the matching transaction with reason Remote; unknown ids are rejected."""
    plug(bench, 1)
    tid = bench.station.session(1).transaction_id  # type: ignore[union-attr]
    assert answer_ok(bench, "RemoteStopTransaction", {"transactionId": 999})["status"] == "Rejected"
    assert answer_ok(bench, "RemoteStopTransaction", {"transactionId": tid})["status"] == "Accepted"
    assert bench.sent("StopTransaction")[-1]["reason"] == "Remote"
    assert bench.statuses(1)[-1] == "Finishing"
    bench.advance(61)
    assert bench.statuses(1)[-1] == "Available"


def test_unlock_connector(bench: Bench) -> None:
    """UnlockConnector stops a running transaction (UnlockCommand); bad connectors NotSupported."""
    plug(bench, 1)
    assert answer_ok(bench, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert bench.sent("StopTransaction")[-1]["reason"] == "UnlockCommand"
    assert answer_ok(bench, "UnlockConnector", {"connectorId": 3}) == {"status": "NotSupported"}


def test_clear_cache_forgets_cached_tags(bench: Bench) -> None:
    """ClearCache empties the authorization cache filled by Authorize answers."""
    plug(bench, 1, tag="CACHED")
    assert "CACHED" in bench.station.auth_cache
    assert answer_ok(bench, "ClearCache", {}) == {"status": "Accepted"}
    assert bench.station.auth_cache == {}


def test_reservations(bench: Bench) -> None:
    """ReserveNow/CancelReservation/expiry drive Reserved; the tag's Start has reservationId."""
    expiry = iso(SIM_EPOCH + bench.now + 600)
    reserve = {"connectorId": 1, "expiryDate": expiry, "idTag": "RES", "reservationId": 11}
    assert answer_ok(bench, "ReserveNow", reserve)["status"] == "Accepted"
    assert bench.statuses(1)[-1] == "Reserved"
    assert not bench.station.plug_in(1, "OTHER", bench.now, ev=EV)
    assert answer_ok(bench, "ReserveNow", {**reserve, "connectorId": 0})["status"] == "Rejected"
    plug(bench, 1, tag="RES")
    assert bench.sent("StartTransaction")[-1]["reservationId"] == 11
    assert answer_ok(bench, "ReserveNow", {**reserve, "reservationId": 12})["status"] == "Occupied"
    reserve2 = {**reserve, "connectorId": 2, "reservationId": 12}
    assert answer_ok(bench, "ReserveNow", reserve2)["status"] == "Accepted"
    assert answer_ok(bench, "CancelReservation", {"reservationId": 12})["status"] == "Accepted"
    assert answer_ok(bench, "CancelReservation", {"reservationId": 12})["status"] == "Rejected"
    assert answer_ok(bench, "ReserveNow", reserve2)["status"] == "Accepted"
    bench.advance(601)
    assert bench.statuses(2)[-1] == "Available"


def test_local_list_and_offline_authorization(bench: Bench) -> None:
    """SendLocalList stores the list (versions checked); offline, listed tags may charge."""
    entries = [
        {"idTag": "GOOD", "idTagInfo": {"status": "Accepted"}},
        {"idTag": "BAD", "idTagInfo": {"status": "Blocked"}},
    ]
    full = {"listVersion": 3, "updateType": "Full", "localAuthorizationList": entries}
    assert answer_ok(bench, "SendLocalList", full) == {"status": "Accepted"}
    assert answer_ok(bench, "GetLocalListVersion", {}) == {"listVersion": 3}
    stale = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": []}
    assert answer_ok(bench, "SendLocalList", stale) == {"status": "VersionMismatch"}
    diff = {
        "listVersion": 4,
        "updateType": "Differential",
        "localAuthorizationList": [{"idTag": "BAD"}],
    }
    assert answer_ok(bench, "SendLocalList", diff) == {"status": "Accepted"}
    assert set(bench.station.local_list) == {"GOOD"}
    bench.disconnect()
    plug(bench, 1, tag="GOOD")
    plug(bench, 2, tag="STRANGER")
    assert bench.station.session(1).state.value == "charging"  # type: ignore[union-attr]
    assert bench.station.session(2).state.value == "refused"  # type: ignore[union-attr]
