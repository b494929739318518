"""The sans-I/O edge (rpc.py, poison.py, limits.py): poison values, bounds, short errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.ocpp16.handlers import HANDLERS
from csms.ocpp16.limits import FragmentBound, Limits, LogBudget
from csms.ocpp16.poison import find_poison, may_hold_poison, repair_stop
from csms.ocpp16.rpc import Answer, Call, Dropped, RpcSession, shorten
from csms.ocpp16.schemas import load_validators


def session(limits: Limits | None = None) -> RpcSession:
    return RpcSession(
        validators=load_validators(), supported=HANDLERS.keys(), accepted=True, limits=limits
    )


def frame(*parts: Any) -> str:
    return orjson.dumps(list(parts)).decode()


def error(event: object) -> list[Any]:
    assert isinstance(event, Answer), event
    decoded: list[Any] = orjson.loads(event.frame)
    return decoded


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
STOP = {"transactionId": 7, "meterStop": 10, "timestamp": "2024-03-01T08:00:00Z"}


@pytest.mark.parametrize(
    ("payload", "found"),
    [
        ({"idTag": "ok"}, None),
        ({"idTag": "a\x00"}, ("PropertyConstraintViolation", "/idTag")),
        ({"connectorId": 2**31 - 1}, None),
        ({"connectorId": 2**31}, ("TypeConstraintViolation", "/connectorId")),
        ({"connectorId": -(2**31) - 1}, ("TypeConstraintViolation", "/connectorId")),
        ({"v": [{"s": [{"value": "1\x00"}]}]}, ("PropertyConstraintViolation", "/v/0/s/0/value")),
        ({"flag": True}, None),
    ],
)
def test_find_poison(payload: dict[str, Any], found: tuple[str, str] | None) -> None:
    """NUL in text and integers beyond 32 bits are found, with their path."""
    poison = find_poison(payload)
    assert (None if poison is None else (poison.code.value, poison.path)) == found


@pytest.mark.parametrize(
    ("text", "suspicious"),
    [
        (frame(2, "1", "Heartbeat", {}), False),
        (frame(2, "1", "StatusNotification", {**STATUS, "info": "a\x00"}), True),
        (frame(2, "1", "StatusNotification", {**STATUS, "connectorId": 2**31}), True),
        (frame(2, "1", "StatusNotification", {**STATUS, "connectorId": -(2**31) - 1}), True),
        (frame(2, "1", "StatusNotification", {**STATUS, "connectorId": 999_999_999}), False),
        # Ten digits anywhere, even in a string or split by nothing but their neighbours.
        (frame(2, "1", "Authorize", {"idTag": "x1234567890x"}), True),
        (frame(2, "1", "Authorize", {"idTag": "123456789.123456789"}), False),
        # Digits of other scripts are no JSON number: they cannot hold a big integer.
        (frame(2, "1", "Authorize", {"idTag": "\u0661" * 12}), False),
        (frame(2, "1", "Authorize", {"idTag": "\u00e9" + "1" * 10}), True),
        # A str with a lone surrogate (never from a UTF-8 frame) is still checked.
        ('[2,"1","Authorize",{"idTag":"\ud800 12345678901"}]', True),
    ],
)
def test_poison_prefilter(text: str, suspicious: bool) -> None:
    """The text test before the walk: every frame that may hold poison is walked."""
    assert may_hold_poison(text) is suspicious


def test_repair_stop_keeps_the_stop() -> None:
    """A Stop is repaired, never refused: NUL replaced, ids and meters beyond 32 bits unread."""
    payload = {**STOP, "transactionId": 2**40, "meterStop": 2**33, "idTag": "a\x00b"}
    repaired, repairs = repair_stop(payload)
    assert repaired["transactionId"] == -1
    assert repaired["meterStop"] is None
    assert repaired["idTag"] == "a\ufffdb"
    assert {r.path for r in repairs} == {"/transactionId", "/meterStop", "/idTag"}
    assert repair_stop(STOP) == (STOP, [])


def test_rpc_refuses_poison_and_repairs_stops() -> None:
    """Other actions get a CALLERROR; StopTransaction comes out as a Call, repaired."""
    rpc = session()
    refused = error(rpc.receive_text(frame(2, "1", "Authorize", {"idTag": "x\x00"})))
    assert refused[2] == "PropertyConstraintViolation"
    stop = rpc.receive_text(frame(2, "2", "StopTransaction", {**STOP, "transactionId": 2**31}))
    assert isinstance(stop, Call)
    assert stop.payload["transactionId"] == -1
    assert stop.repaired


def test_literal_infinity_is_answered() -> None:
    """1e400 and NaN, which orjson refuses, are read and refused by the schema."""
    rpc = session()
    for number in ("1e400", "NaN", "-Infinity"):
        text = frame(2, "n", "StatusNotification", {**STATUS, "connectorId": 0})
        text = text.replace('"connectorId":0', f'"connectorId":{number}')
        assert error(rpc.receive_text(text))[:3] == [4, "n", "TypeConstraintViolation"]


@pytest.mark.parametrize("depth", [33, 255, 300, 1023, 2000])
def test_deep_nesting_is_answered(depth: int) -> None:
    """Any nesting deeper than 32 levels gets FormationViolation, even beyond orjson's 1024."""
    nested = "[" * depth + "]" * depth
    text = f'[2,"d","DataTransfer",{{"vendorId":"v","x":{nested}}}]'
    assert error(session().receive_text(text))[:3] == [4, "d", "FormationViolation"]


def test_garbage_with_a_call_head_is_still_dropped() -> None:
    """Text that is not JSON at all stays unanswerable (contract: logged and dropped)."""
    assert isinstance(session().receive_text('[2,"x","Heartbeat",{oops'), Dropped)


def test_descriptions_are_short() -> None:
    """A CALLERROR never echoes a long value in full: a few hundred characters and a length."""
    event = session().receive_text(frame(2, "1", "Authorize", {"idTag": "A" * 100_000}))
    description = error(event)[3]
    assert len(description) < 300
    assert "characters" in description
    assert shorten("short") == "short"


def test_data_transfer_is_capped() -> None:
    """DataTransfer data beyond max_data_transfer is refused with a clear reason."""
    rpc = session(Limits(max_data_transfer=10))
    big = error(
        rpc.receive_text(frame(2, "1", "DataTransfer", {"vendorId": "v", "data": "x" * 11}))
    )
    assert big[2] == "PropertyConstraintViolation"
    assert "11 characters" in big[3]
    assert isinstance(
        rpc.receive_text(frame(2, "2", "DataTransfer", {"vendorId": "v", "data": "x" * 10})), Call
    )


def test_answer_cache_is_bounded_in_bytes() -> None:
    """Answers kept for retries never exceed answer_cache_bytes, however big the messages."""
    rpc = session(Limits(answer_cache_bytes=4096, max_data_transfer=10**6))
    for index in range(50):
        text = frame(2, f"m{index}", "DataTransfer", {"vendorId": "v", "data": "y" * 1000})
        call = rpc.receive_text(text)
        assert isinstance(call, Call)
        rpc.answer(call, {"status": "Accepted"})
        assert rpc.answers_kept_bytes <= 4096
    assert rpc.answers_kept_bytes > 0
    huge = rpc.receive_text(frame(2, "h", "DataTransfer", {"vendorId": "v", "data": "z" * 9000}))
    assert isinstance(huge, Call)
    rpc.answer(huge, {"status": "Accepted"})
    assert rpc.answers_kept_bytes <= 4096


def test_fragment_bound() -> None:
    """Too many fragments, or a message that takes too long, is refused; others pass."""
    bound = FragmentBound(Limits(max_fragments=3, fragment_timeout=1.0))
    assert [bound.receive_frame(fin=f, now=0.0) for f in (False, False, True)] == [None] * 3
    assert [bound.receive_frame(fin=False, now=0.0) for _ in range(3)] == [None] * 3
    assert "fragments" in (bound.receive_frame(fin=True, now=0.0) or "")
    slow = FragmentBound(Limits(max_fragments=100, fragment_timeout=1.0))
    assert slow.receive_frame(fin=False, now=0.0) is None
    assert "took over" in (slow.receive_frame(fin=True, now=2.0) or "")
    assert slow.receive_frame(fin=True, now=50.0) is None


def test_log_budget() -> None:
    """A burst of lines per window is written; the rest are counted and reported once."""
    budget = LogBudget(burst=2, window=60.0)
    assert [budget.allow(0.0) for _ in range(5)] == [True, True, False, False, False]
    assert budget.take_suppressed() == 3
    assert budget.take_suppressed() == 0
    assert budget.allow(61.0)
