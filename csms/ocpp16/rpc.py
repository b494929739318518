"""OCPP-J 1.6 RPC, sans I/O: frame text in; calls to dispatch, frames to send and replies out.

It owns framing (OCPP-J §4.1), message ids (§4.1.4), schema validation with the exact 1.6
error codes (§4.2.3), tolerant-mode normalisation before it (`leniency.py`), the boot gate
(1.6 errata §3.10, OCPP 1.6 §4.2) and the rule of one outstanding CSMS->charger CALL
(§4.1.1). It never touches a socket, a clock or a task.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any
from uuid import uuid4

import orjson

from csms.ocpp16 import convert, poison
from csms.ocpp16.leniency import Leniency, Normalisation, Profile, normalise
from csms.ocpp16.limits import Limits
from csms.ocpp16.poison import Repair
from csms.ocpp16.schemas import ErrorCode, SchemaViolation, Validators

MAX_MESSAGE_ID_LENGTH = 36
_RECENT_ANSWERS = 16
_BOOT = "BootNotification"
_STOP = "StopTransaction"
_DATA_TRANSFER = "DataTransfer"
# Characters of an error description or a logged value: a 1 MB idTag must not come back in
# a 1 MB CALLERROR, nor fill the log (docs/security.md, "Limits and hostile input").
MAX_DESCRIPTION = 200
# The head of a CALL, read when the frame as a whole is not JSON orjson accepts.
_CALL_HEAD = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,36})"\s*,\s*"([A-Za-z0-9]{1,64})"\s*,')


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Text cut to `limit` characters, saying how long it was; short text is unchanged."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a Call is
# built for every CALL (2.4 us frozen, 1.0 us with slots; bench/analysis.md). Nothing
# changes a Call once built.
@dataclass(slots=True)
class Call:
    """A charger's CALL that passed every check and should be handled."""

    unique_id: str
    action: str
    payload: dict[str, Any]
    frame: str
    # What tolerant mode changed in the payload before it was validated (leniency.py).
    normalised: tuple[Normalisation, ...] = ()
    # What was changed so that a StopTransaction can be kept (poison.py).
    repaired: tuple[Repair, ...] = ()


@dataclass(frozen=True)
class Answer:
    """A frame to send back at once (a CALLERROR, or the repeat of an earlier answer)."""

    frame: bytes
    error_code: ErrorCode | None = None
    reason: str = ""
    # The CALL's action when it could be read (for metrics); "" otherwise.
    action: str = ""


@dataclass(frozen=True)
class Reply:
    """The charger's answer to our outstanding CALL."""

    unique_id: str
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)
    # A CALLRESULT whose payload breaks the action's 1.6 response schema: why.
    violation: SchemaViolation | None = None


@dataclass(frozen=True)
class Dropped:
    """A frame that cannot or must not be answered; it is logged and nothing is sent."""

    reason: str


Event = Call | Answer | Reply | Dropped


def encode_call_result(unique_id: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([MessageType.CALLRESULT, unique_id, payload])


def encode_call_error(
    unique_id: str, code: ErrorCode, description: str, details: dict[str, Any] | None = None
) -> bytes:
    # OCPP-J §4.2.3 Table 6: errorDetails must be {} when there are none.
    return orjson.dumps([MessageType.CALLERROR, unique_id, code.value, description, details or {}])


def _parse_beyond_orjson(frame: str, error: str) -> list[Any] | Event:
    """A frame orjson refused: still a CALL to answer, or a frame to drop.

    orjson refuses numbers beyond a double (a literal 1e400) and NaN, which the standard
    library reads (as infinities; the schema then refuses them with a TypeConstraintViolation),
    and nesting beyond 1024 levels, which is answered FormationViolation when the CALL's
    head (its message id and action) can be read. Anything else is not JSON and is dropped
    (OCPP-J §4.2.3 needs a message id to answer).
    """
    head = _CALL_HEAD.match(frame)
    if head is None:
        return Dropped("frame is not JSON")
    if "depth" in error:
        description = f"{head.group(2)}.req /: nests deeper than {poison.MAX_DEPTH} levels"
        return Answer(
            frame=encode_call_error(head.group(1), ErrorCode.FORMATION_VIOLATION, description),
            error_code=ErrorCode.FORMATION_VIOLATION,
            reason=description,
        )
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return Dropped("frame is not JSON")
    return message if isinstance(message, list) else Dropped("frame is not JSON")


class RpcSession:
    """The RPC state of one OCPP-J connection."""

    def __init__(
        self,
        *,
        validators: Validators,
        supported: Collection[str],
        accepted: bool,
        leniency: Leniency | None = None,
        profile: Profile | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._validators = validators
        self._limits = limits or Limits()
        self._supported = supported
        self.accepted = accepted
        # Tolerant mode: the rules, and the profile of this charger (its last boot's vendor
        # and model, until a BootNotification names them again).
        self._leniency = leniency
        self.profile = profile
        # What a charger that is not accepted may send because csms triggered it
        # (OCPP 1.6 §4.2).
        self._triggered: set[str] = set()
        self._pending_id: str | None = None
        self._pending_action = ""
        # Answers by the frame they answered, for a retry (errata §3.1); bounded in bytes.
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_bytes = 0

    # -- frames from the charger -------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> Event:
        """Classify one text frame from the charger."""
        key = text if isinstance(text, str) else text.decode("utf-8", "replace")
        repeated = self._recent.get(key)
        if repeated is not None:
            # OCPP-J errata §3.1 (2025-04): a retried message may reuse its id; answer it again.
            return Answer(frame=repeated, reason="repeated message")
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            fallback = _parse_beyond_orjson(key, str(exc))
            if not isinstance(fallback, list):
                return fallback
            message = fallback
        if not isinstance(message, list) or not message or type(message[0]) is not int:
            return Dropped("frame is not an OCPP-J message array")
        kind = message[0]
        if kind not in (MessageType.CALL, MessageType.CALLRESULT, MessageType.CALLERROR):
            # OCPP-J §4.1.3: an unknown message type is ignored.
            return Dropped(f"unknown message type {kind}")
        if len(message) < 2 or not isinstance(message[1], str):
            return Dropped("frame has no readable message id")
        unique_id: str = message[1]
        if kind == MessageType.CALL:
            return self._receive_call(unique_id, message, key)
        return self._receive_reply(unique_id, message)

    def _receive_call(self, unique_id: str, message: list[Any], frame: str) -> Event:
        if len(unique_id) > MAX_MESSAGE_ID_LENGTH:
            return self._reject(
                unique_id, ErrorCode.TYPE_CONSTRAINT_VIOLATION, "message id over 36 characters"
            )
        if len(message) < 4:
            return self._reject(unique_id, ErrorCode.PROTOCOL_ERROR, "CALL is incomplete")
        if len(message) > 4 or not isinstance(message[2], str):
            return self._reject(
                unique_id, ErrorCode.FORMATION_VIOLATION, "CALL must be [2, id, action, payload]"
            )
        action: str = message[2]
        payload = message[3]
        if action not in self._validators.actions:
            return self._reject(unique_id, ErrorCode.NOT_IMPLEMENTED, f"unknown action {action}")
        if action not in self._supported:
            return self._reject(
                unique_id, ErrorCode.NOT_SUPPORTED, f"{action} is not supported", action=action
            )
        if not self.accepted and action != _BOOT and action not in self._triggered:
            # OCPP 1.6 errata §3.10: before the first accepted boot, answer SecurityError;
            # OCPP 1.6 §4.2: a Pending charger sends only what csms triggered.
            return self._reject(
                unique_id,
                ErrorCode.SECURITY_ERROR,
                "charger must be accepted by BootNotification",
                action=action,
            )
        if not isinstance(payload, dict):
            return self._reject(
                unique_id,
                ErrorCode.FORMATION_VIOLATION,
                "CALL payload must be a JSON object",
                action=action,
            )
        deep = poison.too_deep(frame, payload)
        if deep is not None:
            # The validator's recursion gives out at 256 levels: answer before it runs.
            return self._reject(unique_id, deep.code, deep.describe(f"{action}.req"), action=action)
        payload, changes, valid = self._normalise(action, payload)
        violation = None if valid else self._validators.check_request(action, payload)
        if violation is not None:
            return self._reject(
                unique_id, violation.code, violation.description, violation.details, action=action
            )
        if action == _DATA_TRANSFER and (too_big := self._data_too_big(payload)) is not None:
            return self._reject(
                unique_id, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, too_big, action=action
            )
        repairs: list[Repair] = []
        if poison.may_hold_poison(frame):
            if action == _STOP:
                # OCPP 1.6 §4.10: a stop is always accepted; it is repaired, never refused.
                payload, repairs = poison.repair_stop(payload)
            elif (found := poison.find_poison(payload)) is not None:
                return self._reject(
                    unique_id, found.code, found.describe(f"{action}.req"), action=action
                )
        return Call(
            unique_id=unique_id,
            action=action,
            payload=payload,
            frame=frame,
            normalised=tuple(changes),
            repaired=tuple(repairs),
        )

    def _normalise(
        self, action: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Normalisation], bool]:
        """The payload tolerant mode would keep, what it changed, and whether the payload is
        already known to match the schema (then it is not validated again)."""
        if self._leniency is None:
            return payload, [], False
        if action == _BOOT:
            # The boot names the charger, so it picks the rule, for itself and what follows.
            self.profile = self._leniency.profile_for(*convert.vendor_and_model(payload))
        profile = self.profile
        if profile is None:
            return payload, [], False
        # Strict payloads take the fast path; only naive timestamps are valid and still
        # need rewriting (the schema's date-time format is not checked).
        if profile.zone is None and self._validators.request_is_valid(action, payload):
            return payload, [], True
        normalised, changes = normalise(self._validators.request_schema(action), payload, profile)
        return normalised, changes, False

    def _data_too_big(self, payload: dict[str, Any]) -> str | None:
        # OCPP 1.6 §4.3 leaves DataTransfer data unbounded; csms keeps what it is sent, so
        # it bounds it (docs/security.md, "Limits and hostile input").
        data = payload.get("data")
        limit = self._limits.max_data_transfer
        if isinstance(data, str) and len(data) > limit:
            return f"DataTransfer.req /data: {len(data)} characters, over the {limit} allowed"
        return None

    def allow_triggered(self, actions: Collection[str]) -> None:
        """Let a charger that is not accepted send what csms asked for (OCPP 1.6 §4.2)."""
        self._triggered.update(actions)

    def _reject(
        self,
        unique_id: str,
        code: ErrorCode,
        description: str,
        details: dict[str, Any] | None = None,
        *,
        action: str = "",
    ) -> Answer:
        description = shorten(description)
        frame = encode_call_error(unique_id, code, description, details)
        return Answer(frame=frame, error_code=code, reason=description, action=action)

    def _receive_reply(self, unique_id: str, message: list[Any]) -> Event:
        if unique_id != self._pending_id:
            # A late answer to a CALL that timed out: matching by id keeps the next call clean.
            return Dropped(f"answer to unknown or expired message id {unique_id}")
        self._pending_id = None
        if message[0] == MessageType.CALLRESULT:
            payload = message[2] if len(message) > 2 else None
            if not isinstance(payload, dict):
                return Reply(
                    unique_id=unique_id,
                    error_code=ErrorCode.FORMATION_VIOLATION.value,
                    error_description="CALLRESULT payload is not a JSON object",
                )
            # Our CALLs are schema-checked before they go; their answers are checked too, so
            # an answer that breaks the .conf schema is reported, never acted upon.
            violation = self._validators.check_response(self._pending_action, payload)
            return Reply(unique_id=unique_id, payload=payload, violation=violation)
        code, description, details = [*message[2:5], None, None, None][:3]
        return Reply(
            unique_id=unique_id,
            error_code=str(code) if code is not None else ErrorCode.GENERIC_ERROR.value,
            error_description=description if isinstance(description, str) else "",
            error_details=details if isinstance(details, dict) else {},
        )

    # -- answers to the charger's CALLs ------------------------------------------------------

    def answer(self, call: Call, payload: dict[str, Any]) -> bytes:
        """The CALLRESULT frame for a handled call; remembered so a retry gets it again."""
        frame = encode_call_result(call.unique_id, payload)
        self._remember(call.frame, frame)
        return frame

    def _remember(self, key: str, frame: bytes) -> None:
        size = len(key) + len(frame)
        if size > self._limits.answer_cache_bytes:
            return  # a retry of a message this big is handled again, not answered from memory
        # orjson's bytes keep a 4 KiB buffer whatever their length; a kept answer is copied
        # to its own size, or every idle charger would hold 4 KiB for its boot answer.
        previous = self._recent.pop(key, None)
        if previous is not None:
            self._recent_bytes -= len(key) + len(previous)
        self._recent[key] = bytes(memoryview(frame))
        self._recent_bytes += size
        while len(self._recent) > _RECENT_ANSWERS or (
            self._recent_bytes > self._limits.answer_cache_bytes
        ):
            old_key, old_frame = self._recent.popitem(last=False)
            self._recent_bytes -= len(old_key) + len(old_frame)

    @property
    def answers_kept_bytes(self) -> int:
        """Bytes of frames and answers kept for retries (bounded by answer_cache_bytes)."""
        return self._recent_bytes

    def fail(self, call: Call, code: ErrorCode, description: str) -> bytes:
        """The CALLERROR frame for a call whose handling failed (not remembered: retry runs)."""
        return encode_call_error(call.unique_id, code, description)

    # -- our CALLs to the charger ------------------------------------------------------------

    @property
    def call_pending(self) -> bool:
        return self._pending_id is not None

    def send_call(self, action: str, payload: dict[str, Any]) -> tuple[str, bytes]:
        """Start a CSMS->charger CALL; returns its message id and frame.

        Raises:
            RuntimeError: a CALL is already outstanding (OCPP-J §4.1.1); the caller serialises.
        """
        if self._pending_id is not None:
            raise RuntimeError("a CALL to this charger is already outstanding")
        # Errata §3.1: ids unique across connections of the identity, so never a counter.
        unique_id = str(uuid4())
        self._pending_id = unique_id
        self._pending_action = action
        return unique_id, orjson.dumps([MessageType.CALL, unique_id, action, payload])

    def abandon_call(self, unique_id: str) -> None:
        """Forget an outstanding CALL (timed out); a late answer will then be dropped."""
        if self._pending_id == unique_id:
            self._pending_id = None
