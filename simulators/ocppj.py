"""OCPP-J 1.6 framing and schema validation, pure and synchronous.

Frames are the JSON arrays of OCPP-J §4: ``[2, id, action, payload]`` (CALL),
``[3, id, payload]`` (CALLRESULT) and ``[4, id, code, description, details]``
(CALLERROR). Validators for every 1.6 request and response are compiled once, at
import, from the JSON schemas shipped with the ``ocpp`` package (only the schema
files are used, never its runtime).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final

import jsonschema_rs
import orjson

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "CHARGER_ACTIONS",
    "CHARGER_SECURITY_ACTIONS",
    "CSMS_ACTIONS",
    "SECURITY_ACTIONS",
    "Call",
    "CallError",
    "CallErrorFrame",
    "CallResult",
    "CallTimeout",
    "ConnectionLost",
    "ErrorCode",
    "FrameError",
    "MessageType",
    "dump_call",
    "dump_callerror",
    "dump_callresult",
    "parse_frame",
    "validate_request",
    "validate_response",
]


class MessageType(IntEnum):
    """OCPP-J message type numbers."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


CALL: Final = 2
CALLRESULT: Final = 3
CALLERROR: Final = 4


class ErrorCode(StrEnum):
    """The CALLERROR codes of OCPP-J 1.6 §4.2.3 (spelling as in the specification)."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


class CallError(Exception):
    """A CALLERROR answer (or a local failure reported the same way) to a CALL we sent."""

    def __init__(self, code: str, description: str = "", details: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = details if details is not None else {}


class CallTimeout(CallError):
    """No answer came within the call timeout."""

    def __init__(self, description: str = "no answer") -> None:
        super().__init__("Timeout", description)


class ConnectionLost(CallError):
    """The connection dropped (or was down) before an answer came."""

    def __init__(self, description: str = "connection lost") -> None:
        super().__init__("ConnectionLost", description)


# Actions a charger sends (charger -> central system).
CHARGER_ACTIONS: Final = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    }
)

# Actions the central system sends (central system -> charger) that the simulator implements.
CSMS_ACTIONS: Final = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)

# Security Whitepaper (edition 3) actions: NotSupported by a station built without it.
SECURITY_ACTIONS: Final = frozenset(
    {
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)

# What a charger sends for the Security Whitepaper (edition 3).
CHARGER_SECURITY_ACTIONS: Final = frozenset(
    {
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
)


def _schema_dir() -> str:
    import ocpp  # only for the location of its JSON schema files

    return os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")


def _load_validators() -> tuple[dict[str, Any], dict[str, Any]]:
    requests: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    directory = _schema_dir()
    for action in CHARGER_ACTIONS | CSMS_ACTIONS | SECURITY_ACTIONS | CHARGER_SECURITY_ACTIONS:
        for suffix, target in (("", requests), ("Response", responses)):
            with open(os.path.join(directory, f"{action}{suffix}.json"), "rb") as f:
                schema = orjson.loads(f.read())
            target[action] = jsonschema_rs.Draft4Validator(schema, validate_formats=False)
    return requests, responses


_REQUEST_VALIDATORS, _RESPONSE_VALIDATORS = _load_validators()

# JSON-schema keyword that failed -> OCPP 1.6 error code.
_KEYWORD_CODES: Final = {
    "additionalProperties": ErrorCode.FORMATION_VIOLATION,
    "required": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}


# When a payload breaks several rules, the first code in this order is answered.
_RANK: Final = {
    code: rank
    for rank, code in enumerate(
        (
            ErrorCode.FORMATION_VIOLATION,
            ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
            ErrorCode.TYPE_CONSTRAINT_VIOLATION,
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        )
    )
}


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a payload does not match its schema, with the OCPP error code to answer."""

    code: ErrorCode
    description: str


def _validate(validators: dict[str, Any], action: str, payload: Any) -> Violation | None:
    validator = validators.get(action)
    if validator is None:
        return Violation(ErrorCode.NOT_IMPLEMENTED, f"unknown action {action!r}")
    if validator.is_valid(payload):
        return None
    if not isinstance(payload, dict):
        return Violation(ErrorCode.FORMATION_VIOLATION, "payload is not a JSON object")
    # Report the most telling error: structure first, then occurrence, type and values.
    best: tuple[int, Violation] | None = None
    for error in validator.iter_errors(payload):
        keyword = str(error.schema_path[-1]) if error.schema_path else ""
        code = _KEYWORD_CODES.get(keyword, ErrorCode.FORMATION_VIOLATION)
        path = "/".join(str(p) for p in error.instance_path)
        violation = Violation(code, f"{path or '<payload>'}: {error.message}"[:255])
        rank = _RANK[code]
        if best is None or rank < best[0]:
            best = (rank, violation)
    assert best is not None
    return best[1]


def validate_request(action: str, payload: Any) -> Violation | None:
    """Check a CALL payload for ``action``; None when valid."""
    return _validate(_REQUEST_VALIDATORS, action, payload)


def validate_response(action: str, payload: Any) -> Violation | None:
    """Check a CALLRESULT payload answering ``action``; None when valid."""
    return _validate(_RESPONSE_VALIDATORS, action, payload)


def is_valid_request(action: str, payload: Any) -> bool:
    """Fast yes/no check of a CALL payload."""
    validator = _REQUEST_VALIDATORS.get(action)
    return validator is not None and bool(validator.is_valid(payload))


def is_valid_response(action: str, payload: Any) -> bool:
    """Fast yes/no check of a CALLRESULT payload."""
    validator = _RESPONSE_VALIDATORS.get(action)
    return validator is not None and bool(validator.is_valid(payload))


@dataclass(frozen=True, slots=True)
class Call:
    """A CALL frame."""

    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    """A CALLRESULT frame."""

    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallErrorFrame:
    """A CALLERROR frame."""

    unique_id: str
    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that is not valid OCPP-J; ``unique_id`` is set when a CALLERROR can be answered."""

    reason: str
    unique_id: str | None = None
    code: ErrorCode = ErrorCode.FORMATION_VIOLATION


Frame = Call | CallResult | CallErrorFrame | FrameError


def parse_frame(data: bytes | str) -> Frame:
    """Decode one websocket text message into a frame (never raises)."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return FrameError("not JSON", code=ErrorCode.PROTOCOL_ERROR)
    if not isinstance(msg, list) or len(msg) < 3:
        return FrameError("not an OCPP-J array", code=ErrorCode.PROTOCOL_ERROR)
    kind, unique_id = msg[0], msg[1]
    if not isinstance(unique_id, str) or not unique_id or len(unique_id) > 36:
        return FrameError("bad unique id", code=ErrorCode.PROTOCOL_ERROR)
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            return FrameError("CALL must be [2, id, action, payload]", unique_id)
        if not isinstance(msg[3], dict):
            return FrameError("CALL payload must be an object", unique_id)
        return Call(unique_id, msg[2], msg[3])
    if kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            return FrameError("CALLRESULT must be [3, id, payload]")
        return CallResult(unique_id, msg[2])
    if kind == CALLERROR:
        if len(msg) != 5 or not isinstance(msg[2], str) or not isinstance(msg[3], str):
            return FrameError("CALLERROR must be [4, id, code, description, details]")
        details = msg[4] if isinstance(msg[4], dict) else {}
        return CallErrorFrame(unique_id, msg[2], msg[3], details)
    return FrameError(f"unknown message type {kind!r}", code=ErrorCode.PROTOCOL_ERROR)


def dump_call(unique_id: str, action: str, payload: dict[str, Any]) -> bytes:
    """Encode a CALL."""
    return orjson.dumps([CALL, unique_id, action, payload])


def dump_callresult(unique_id: str, payload: dict[str, Any]) -> bytes:
    """Encode a CALLRESULT."""
    return orjson.dumps([CALLRESULT, unique_id, payload])


def dump_callerror(
    unique_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> bytes:
    """Encode a CALLERROR."""
    return orjson.dumps([CALLERROR, unique_id, code, description, details or {}])
