"""OCPP-J framing and schema validation of the simulator (pure, synchronous)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from simulators.ocppj import (
    Call,
    CallErrorFrame,
    CallResult,
    ErrorCode,
    FrameError,
    dump_call,
    dump_callerror,
    dump_callresult,
    parse_frame,
    validate_request,
    validate_response,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[2,"1","Reset",{"type":"Hard"}]', Call("1", "Reset", {"type": "Hard"})),
        ('[3,"abc",{"status":"Accepted"}]', CallResult("abc", {"status": "Accepted"})),
        ('[4,"9","NotImplemented","nope",{}]', CallErrorFrame("9", "NotImplemented", "nope", {})),
    ],
)
def test_parse_valid_frames(text: str, expected: object) -> None:
    """Well-formed CALL, CALLRESULT and CALLERROR frames decode to their dataclasses."""
    assert parse_frame(text) == expected


@pytest.mark.parametrize(
    ("text", "unique_id", "code"),
    [
        ("not json", None, ErrorCode.PROTOCOL_ERROR),
        ('{"a": 1}', None, ErrorCode.PROTOCOL_ERROR),
        ('[2, 5, "Reset", {}]', None, ErrorCode.PROTOCOL_ERROR),
        ('[2, "x", "Reset"]', "x", ErrorCode.FORMATION_VIOLATION),
        ('[2, "x", "Reset", []]', "x", ErrorCode.FORMATION_VIOLATION),
        ('[3, "x", "oops"]', None, ErrorCode.FORMATION_VIOLATION),
        ('[7, "x", {}]', None, ErrorCode.PROTOCOL_ERROR),
        ('[2, "' + "x" * 37 + '", "Reset", {}]', None, ErrorCode.PROTOCOL_ERROR),
    ],
)
def test_parse_bad_frames(text: str, unique_id: str | None, code: ErrorCode) -> None:
    """Malformed frames never raise; a CALL whose id is readable can still be answered."""
    frame = parse_frame(text)
    assert isinstance(frame, FrameError)
    assert frame.unique_id == unique_id
    assert frame.code is code


def test_dump_round_trip() -> None:
    """Encoders produce what the parser reads back."""
    assert parse_frame(dump_call("1", "Heartbeat", {})) == Call("1", "Heartbeat", {})
    assert parse_frame(dump_callresult("2", {"a": 1})) == CallResult("2", {"a": 1})
    assert parse_frame(dump_callerror("3", "GenericError", "x")) == CallErrorFrame(
        "3", "GenericError", "x", {}
    )


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("Reset", {"type": "Hard", "extra": 1}, ErrorCode.FORMATION_VIOLATION),
        ("Reset", {}, ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION),
        ("Reset", {"type": 5}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("Reset", {"type": "Medium"}, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
        ("RemoteStartTransaction", {"idTag": "x" * 21}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("UnlockConnector", {"connectorId": "1"}, ErrorCode.TYPE_CONSTRAINT_VIOLATION),
        ("ChangeAvailability", {"connectorId": 1}, ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION),
        (
            "GetConfiguration",
            {"key": ["HeartbeatInterval"], "foo": True, "bar": 1},
            ErrorCode.FORMATION_VIOLATION,
        ),
        ("SendLocalList", {"listVersion": 1}, ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION),
        ("FooBar", {}, ErrorCode.NOT_IMPLEMENTED),
    ],
)
def test_request_violations_map_to_ocpp_codes(
    action: str, payload: dict[str, Any], code: ErrorCode
) -> None:
    """Each kind of schema violation maps to the OCPP 1.6 error code to answer."""
    violation = validate_request(action, payload)
    assert violation is not None
    assert violation.code is code


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("Reset", {"type": "Soft"}),
        ("GetConfiguration", {}),
        ("RemoteStartTransaction", {"idTag": "ABC", "connectorId": 1}),
        ("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 2}),
    ],
)
def test_valid_requests_pass(action: str, payload: dict[str, Any]) -> None:
    """Valid CALL payloads produce no violation."""
    assert validate_request(action, payload) is None


def test_response_validation() -> None:
    """CALLRESULT payloads are checked against the *Response schemas."""
    assert validate_response("Heartbeat", {"currentTime": "2026-01-01T00:00:00Z"}) is None
    violation = validate_response("Heartbeat", {})
    assert violation is not None
    assert violation.code is ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION


def test_limits_rounded_to_tenths_pass_multiple_of() -> None:
    """Composite-schedule limits rounded to 0.1 satisfy the schema's multipleOf 0.1."""
    failures = []
    for tenths in range(0, 50_000, 7):
        limit = round(tenths / 10.0 * 3.7, 1)
        payload = {
            "status": "Accepted",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        }
        if validate_response("GetCompositeSchedule", orjson.loads(orjson.dumps(payload))):
            failures.append(limit)
    assert failures == []
