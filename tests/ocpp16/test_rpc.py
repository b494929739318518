"""The sans-I/O OCPP-J RPC: frames in, events out, exact 1.6 error codes (OCPP-J 1.6 §4;
docs/ocpp.md, "Errors")."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.ocpp16.handlers import HANDLERS
from csms.ocpp16.rpc import Answer, Call, Dropped, Reply, RpcSession
from csms.ocpp16.schemas import ErrorCode, load_validators

STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


def session(*, accepted: bool = True) -> RpcSession:
    return RpcSession(validators=load_validators(), supported=HANDLERS.keys(), accepted=accepted)


def frame(*parts: Any) -> str:
    return orjson.dumps(list(parts)).decode()


def error_of(event: object) -> tuple[str, str]:
    assert isinstance(event, Answer), event
    decoded = orjson.loads(event.frame)
    assert decoded[0] == 4
    assert isinstance(decoded[3], str)
    assert isinstance(decoded[4], dict)
    return decoded[1], decoded[2]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("{}", "not an OCPP-J message array"),
        ("[]", "not an OCPP-J message array"),
        ('["2", "1", "Heartbeat", {}]', "not an OCPP-J message array"),
        ('[5, "1", "X", {}]', "unknown message type 5"),
        ("[2]", "no readable message id"),
        ('[2, 17, "Heartbeat", {}]', "no readable message id"),
        ('[3, "nobody-waits", {}]', "unknown or expired message id"),
        ('[4, "nobody-waits", "InternalError", "", {}]', "unknown or expired message id"),
    ],
)
def test_unanswerable_frames_are_dropped(text: str, reason: str) -> None:
    """Non-JSON, unknown message types and unreadable ids are dropped, never answered."""
    event = session().receive_text(text)
    assert isinstance(event, Dropped)
    assert reason in event.reason


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (frame(2, "a" * 37, "Heartbeat", {}), "TypeConstraintViolation"),
        (frame(2, "1", "Heartbeat"), "ProtocolError"),
        (frame(2, "1", "Heartbeat", {}, {}), "FormationViolation"),
        (frame(2, "1", 7, {}), "FormationViolation"),
        (frame(2, "1", "Heartbeat", []), "FormationViolation"),
        (frame(2, "1", "FooBar", {}), "NotImplemented"),
        (frame(2, "1", "Reset", {"type": "Hard"}), "NotSupported"),
        (
            frame(2, "1", "StatusNotification", {**STATUS, "status": "charging"}),
            "PropertyConstraintViolation",
        ),
        (frame(2, "1", "StatusNotification", {**STATUS, "extra": 1}), "FormationViolation"),
        (
            frame(
                2, "1", "StatusNotification", {k: v for k, v in STATUS.items() if k != "errorCode"}
            ),
            "OccurenceConstraintViolation",
        ),
        (
            frame(2, "1", "StatusNotification", {**STATUS, "connectorId": "1"}),
            "TypeConstraintViolation",
        ),
        (
            frame(2, "1", "StatusNotification", {**STATUS, "info": "x" * 51}),
            "TypeConstraintViolation",
        ),
        (
            frame(
                2,
                "1",
                "StartTransaction",
                {"connectorId": 1, "idTag": "A", "meterStart": 1.5, "timestamp": "t"},
            ),
            "TypeConstraintViolation",
        ),
        (
            frame(
                2,
                "1",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [{"timestamp": "t", "sampledValue": [{"value": "1", "x": 1}]}],
                },
            ),
            "FormationViolation",
        ),
        (
            frame(
                2,
                "1",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [
                        {"timestamp": "t", "sampledValue": [{"value": "1", "unit": "Hz"}]}
                    ],
                },
            ),
            "PropertyConstraintViolation",
        ),
    ],
)
def test_bad_calls_get_exact_16_error_codes(text: str, code: str) -> None:
    """Each malformed CALL gets the OCPP-J 1.6 code (never FormatViolation), echoing its id."""
    unique_id, got = error_of(session().receive_text(text))
    assert got == code
    assert unique_id == orjson.loads(text)[1]


def test_calls_before_boot_get_security_error() -> None:
    """Before the first accepted boot, anything but BootNotification is a SecurityError."""
    rpc = session(accepted=False)
    assert (
        error_of(rpc.receive_text(frame(2, "1", "StatusNotification", STATUS)))[1]
        == "SecurityError"
    )
    boot = rpc.receive_text(
        frame(2, "2", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    )
    assert isinstance(boot, Call)


def test_valid_call_is_dispatched() -> None:
    """A valid CALL comes out as a Call carrying its payload."""
    event = session().receive_text(frame(2, "42", "StatusNotification", STATUS))
    assert isinstance(event, Call)
    assert (event.unique_id, event.action, event.payload) == ("42", "StatusNotification", STATUS)


@pytest.mark.parametrize("unit", ["Celsius", "Celcius"])
def test_both_celsius_spellings_are_accepted(unit: str) -> None:
    """OCPP-J errata §2.1: accept 'Celsius' and the original 'Celcius'."""
    payload = {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": "t",
                "sampledValue": [{"value": "21", "unit": unit, "measurand": "Temperature"}],
            }
        ],
    }
    assert isinstance(session().receive_text(frame(2, "1", "MeterValues", payload)), Call)


def test_repeated_message_gets_the_same_answer_without_dispatch() -> None:
    """A retried CALL with the same id and payload is answered again, not handled twice (T16b)."""
    rpc = session()
    text = frame(2, "7", "StatusNotification", STATUS)
    call = rpc.receive_text(text)
    assert isinstance(call, Call)
    sent = rpc.answer(call, {})
    again = rpc.receive_text(text)
    assert isinstance(again, Answer)
    assert again.frame == sent == b'[3,"7",{}]'


def test_failed_call_is_handled_again_on_retry() -> None:
    """A CALL answered with InternalError is not remembered, so its retry is processed."""
    rpc = session()
    text = frame(2, "8", "StatusNotification", STATUS)
    call = rpc.receive_text(text)
    assert isinstance(call, Call)
    assert orjson.loads(rpc.fail(call, ErrorCode.INTERNAL_ERROR, "db down"))[2] == "InternalError"
    assert isinstance(rpc.receive_text(text), Call)


def test_one_outstanding_call_and_late_answers_dropped() -> None:
    """Only one CSMS CALL at a time; a late answer after abandon is dropped (docs/ocpp.md,
    "Our CALLs to the charger")."""
    rpc = session()
    first_id, first = rpc.send_call("Reset", {"type": "Soft"})
    assert orjson.loads(first) == [2, first_id, "Reset", {"type": "Soft"}]
    with pytest.raises(RuntimeError):
        rpc.send_call("Reset", {"type": "Hard"})
    rpc.abandon_call(first_id)
    second_id, _ = rpc.send_call("ClearCache", {})
    assert isinstance(rpc.receive_text(frame(3, first_id, {"status": "Accepted"})), Dropped)
    reply = rpc.receive_text(frame(3, second_id, {"status": "Accepted"}))
    assert reply == Reply(unique_id=second_id, payload={"status": "Accepted"})
    assert not rpc.call_pending


def test_crossing_call_is_dispatched_while_ours_is_pending() -> None:
    """A charger CALL that crosses ours is handled; our reply still matches."""
    rpc = session()
    unique_id, _ = rpc.send_call("ClearCache", {})
    assert isinstance(rpc.receive_text(frame(2, "c1", "Heartbeat", {})), Call)
    assert rpc.receive_text(frame(3, unique_id, {"status": "Accepted"})) == Reply(
        unique_id=unique_id, payload={"status": "Accepted"}
    )


def test_call_error_reply_is_reported() -> None:
    """A CALLERROR answer carries the charger's code, description and details
    (OCPP-J 1.6 §4.2.3)."""
    rpc = session()
    unique_id, _ = rpc.send_call("Reset", {"type": "Soft"})
    reply = rpc.receive_text(frame(4, unique_id, "NotSupported", "no reset", {"why": "x"}))
    assert reply == Reply(
        unique_id=unique_id,
        error_code="NotSupported",
        error_description="no reset",
        error_details={"why": "x"},
    )


def test_message_ids_are_unique_uuids() -> None:
    """Our CALL ids are fresh UUIDs, never a counter that repeats across reconnects."""
    ids = set()
    for _ in range(100):
        unique_id, _ = session().send_call("ClearCache", {})
        assert len(unique_id) == 36
        ids.add(unique_id)
    assert len(ids) == 100


def test_charging_schedule_decimals_validate_as_multiples_of_a_tenth() -> None:
    """Draft-04 multipleOf 0.1 accepts 22.3 and 0.7 (float pitfall) and refuses 16.15."""
    validators = load_validators()
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 22.3},
                    {"startPeriod": 60, "limit": 0.7},
                ],
            },
        },
    }
    assert validators.check_request("SetChargingProfile", profile) is None
    profile["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 16.15  # type: ignore[index]
    violation = validators.check_request("SetChargingProfile", profile)
    assert violation is not None
    assert violation.code.value == "PropertyConstraintViolation"
