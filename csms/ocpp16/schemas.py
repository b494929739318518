"""OCPP 1.6 JSON schemas from the `ocpp` package, compiled once into jsonschema-rs validators."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import ocpp


class ErrorCode(StrEnum):
    """The ten OCPP-J 1.6 CALLERROR codes (OCPP-J §4.2.3 Table 7), spelled as on the wire.

    1.6 keeps 'FormationViolation' and 'OccurenceConstraintViolation' (OCPP-J errata §5);
    the `ocpp` package's 'FormatViolation' is an OCPP 2.x code and must never go out.
    """

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


@dataclass(frozen=True)
class SchemaViolation:
    """Why a payload does not match its schema, as an OCPP error code and a readable reason."""

    code: ErrorCode
    description: str
    details: dict[str, Any] = field(default_factory=dict)


_CODE_BY_KIND = {
    "AdditionalProperties": ErrorCode.FORMATION_VIOLATION,
    "Required": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "MinItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "MaxItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    # mobilityhouse/ocpp#312: an over-long string is a type violation (CiString20Type etc.).
    "Type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "MaxLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "MinLength": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "Enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "Minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "Maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "ExclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "ExclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "MultipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "Pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "Format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}

# Errors are reported most-structural first, so a missing field wins over a bad value.
_PRECEDENCE = [
    ErrorCode.FORMATION_VIOLATION,
    ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
]


class Validators:
    """One compiled validator per OCPP 1.6 message, requests and responses."""

    def __init__(self, schema_dir: Path) -> None:
        self._requests: dict[str, Any] = {}
        self._responses: dict[str, Any] = {}
        self._request_schemas: dict[str, dict[str, Any]] = {}
        for path in sorted(schema_dir.glob("*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            # Formats are not checked: an odd timestamp is parsed leniently, stored and flagged,
            # never refused (docs/ocpp.md, "Transactions").
            validator = jsonschema_rs.Draft4Validator(schema, validate_formats=False)
            if path.stem.endswith("Response"):
                self._responses[path.stem.removesuffix("Response")] = validator
            else:
                self._requests[path.stem] = validator
                self._request_schemas[path.stem] = schema
        self._actions = frozenset(self._requests)

    @property
    def actions(self) -> frozenset[str]:
        """Every action OCPP 1.6 (with the security extension) defines."""
        return self._actions

    def check_request(self, action: str, payload: Any) -> SchemaViolation | None:
        return _check(self._requests[action], payload, f"{action}.req")

    def request_is_valid(self, action: str, payload: Any) -> bool:
        """Whether a request payload matches its schema (the fast path: no error built)."""
        return bool(self._requests[action].is_valid(payload))

    def request_schema(self, action: str) -> dict[str, Any]:
        """The JSON schema of an action's request, for tolerant mode (`leniency.py`)."""
        return self._request_schemas[action]

    def check_response(self, action: str, payload: Any) -> SchemaViolation | None:
        return _check(self._responses[action], payload, f"{action}.conf")


def _check(validator: Any, payload: Any, name: str) -> SchemaViolation | None:
    if validator.is_valid(payload):
        return None
    found: list[SchemaViolation] = []
    for error in validator.iter_errors(payload):
        kind = type(error.kind).__name__
        path = "/" + "/".join(str(part) for part in error.instance_path)
        found.append(
            SchemaViolation(
                code=_CODE_BY_KIND.get(kind, ErrorCode.FORMATION_VIOLATION),
                description=f"{name} {path}: {error.message}",
                details={"path": path, "kind": kind},
            )
        )
    return min(found, key=lambda violation: _rank(violation.code))


def _rank(code: ErrorCode) -> int:
    return _PRECEDENCE.index(code) if code in _PRECEDENCE else len(_PRECEDENCE)


@cache
def load_validators() -> Validators:
    """The validators for OCPP 1.6, compiled on first use and shared afterwards."""
    return Validators(Path(ocpp.__file__).parent / "v16" / "schemas")
