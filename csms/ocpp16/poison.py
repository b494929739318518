"""Poison values: what the OCPP 1.6 schema lets through but csms cannot store, found at the edge.

Sans I/O, like `rpc.py`: a payload in, the first poison value (or the repaired payload) out.
A charger's own bad data must never reach the database and come back as InternalError,
which tells the charger to retry a message that will always fail (issue 13,
docs/security.md "Limits and hostile input"):

- a NUL character in a string (PostgreSQL text cannot hold U+0000);
- an integer beyond 32 bits: OCPP 1.6 §2 (Part 2 "Data types") has `integer` as a 32-bit
  signed number, and PostgreSQL's `integer` columns hold exactly that;
- nesting deeper than any 1.6 message has (the validator's recursion gives out at 256).

Every CALL except StopTransaction is refused with a short CALLERROR. StopTransaction is
repaired instead, because OCPP 1.6 §4.10 has the CSMS always accept a stop: see `repair_stop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csms.ocpp16.schemas import ErrorCode

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# OCPP 1.6 requests nest at most 6 levels (SetChargingProfile's periods); 32 leaves room for
# the unknown fields tolerant mode drops, and stays far below the validator's 256.
MAX_DEPTH = 32
# OCPP 1.6 errata §3.18: the transactionId of a transaction the CSMS never heard of.
UNKNOWN_TRANSACTION_ID = -1
# What replaces a NUL in a StopTransaction's strings: the Unicode replacement character.
NUL_REPLACEMENT = "\ufffd"

# A frame can only hold a poison value if its text has a NUL escape or 10+ digits in a row
# (2**31 has 10, and a JSON number is ASCII digits); checking the text first keeps the usual
# message off the Python walk. The digit runs are looked for in the frame's UTF-8 bytes with
# every digit made "0" and every other byte ".": two passes in C, where the regular
# expression `\d{10}` tried a match at every digit and cost ten times as much on a MeterValues
# (docs/performance.md, "Where a call's CPU time goes").
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_TEN_DIGITS = b"0" * 10


@dataclass(frozen=True)
class Poison:
    """A value csms refuses, with where it is and why (short: it goes in a CALLERROR)."""

    code: ErrorCode
    path: str
    reason: str

    def describe(self, name: str) -> str:
        return f"{name} {self.path}: {self.reason}"


def may_hold_poison(frame: str) -> bool:
    """Whether a frame's text could hold a NUL or a big integer (a cheap test on the text)."""
    if "\\u0000" in frame:
        return True
    # surrogatepass: a str that did not come from a UTF-8 frame must not fail the check.
    return _TEN_DIGITS in frame.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY)


def too_deep(frame: str, payload: Any) -> Poison | None:
    """Nesting deeper than `MAX_DEPTH`, checked before the schema validator recurses."""
    if frame.count("[") + frame.count("{") <= MAX_DEPTH:
        return None
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return Poison(
                ErrorCode.FORMATION_VIOLATION, "/", f"nests deeper than {MAX_DEPTH} levels"
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return None


def find_poison(payload: Any) -> Poison | None:
    """The first NUL-bearing string or out-of-range integer of a (schema-valid) payload."""
    for path, value in _leaves(payload, ""):
        poison = _poison_of(path, value)
        if poison is not None:
            return poison
    return None


def _poison_of(path: str, value: Any) -> Poison | None:
    if isinstance(value, str) and "\x00" in value:
        # OCPP 1.6 §7 CiString types are printable text; NUL never is.
        return Poison(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, path, "NUL character in text")
    if type(value) is int and not INT32_MIN <= value <= INT32_MAX:
        return Poison(
            ErrorCode.TYPE_CONSTRAINT_VIOLATION,
            path,
            f"integer beyond 32 bits ({len(str(value))} digits)",
        )
    return None


def _leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{where}/{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}/{index}", child) for index, child in enumerate(item))
        else:
            found.append((where, item))
    found.reverse()
    return found


@dataclass(frozen=True)
class Repair:
    """One value of a StopTransaction changed so that the stop can be kept."""

    path: str
    before: Any
    after: Any


def repair_stop(payload: dict[str, Any]) -> tuple[dict[str, Any], list[Repair]]:
    """A schema-valid StopTransaction.req made storable, and what was changed.

    OCPP 1.6 §4.10: the Central System cannot refuse a stop, so nothing here is refused:
    a NUL becomes U+FFFD; a transactionId beyond 32 bits cannot be one csms gave out, so
    it becomes -1 (errata §3.18, kept as an orphan stop); a meterStop beyond 32 bits is
    unreadable and becomes None (the stop is kept, flagged, without a meter reading).
    """
    repairs: list[Repair] = []
    repaired = _repair(payload, "", repairs)
    transaction_id = repaired["transactionId"]
    if not INT32_MIN <= transaction_id <= INT32_MAX:
        repaired["transactionId"] = UNKNOWN_TRANSACTION_ID
        repairs.append(Repair("/transactionId", transaction_id, UNKNOWN_TRANSACTION_ID))
    meter_stop = repaired["meterStop"]
    if not INT32_MIN <= meter_stop <= INT32_MAX:
        repaired["meterStop"] = None
        repairs.append(Repair("/meterStop", meter_stop, None))
    return repaired, repairs


def _repair(value: Any, path: str, repairs: list[Repair]) -> Any:
    if isinstance(value, str) and "\x00" in value:
        fixed = value.replace("\x00", NUL_REPLACEMENT)
        repairs.append(Repair(path, value, fixed))
        return fixed
    if isinstance(value, dict):
        return {key: _repair(item, f"{path}/{key}", repairs) for key, item in value.items()}
    if isinstance(value, list):
        return [_repair(item, f"{path}/{index}", repairs) for index, item in enumerate(value)]
    return value
