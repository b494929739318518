"""Our CALLs to the central system: the queue, one in flight, timeouts and retries.

OCPP-J §4.1.1 allows one outstanding CALL per direction, so CALLs wait in a queue and the
next goes out when the answer to the previous one (or its timeout) is in. Transaction
messages (OCPP 1.6 §4.10) survive disconnects and are retried per
TransactionMessageAttempts/RetryInterval; other CALLs fail when the connection goes.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final, Protocol

from .clock import Clock
from .config import ConfigStore
from .model import Session
from .ocppj import (
    Call,
    CallError,
    CallErrorFrame,
    CallResult,
    CallTimeout,
    dump_call,
    dump_callerror,
    dump_callresult,
    is_valid_request,
    is_valid_response,
    parse_frame,
    validate_request,
    validate_response,
)
from .services import Callback
from .stats import Stats
from .timers import Timer, Timers

__all__ = ["UNDELIVERED_TRANSACTION", "CallQueue", "OutboundCall", "QueueServices"]

UNDELIVERED_TRANSACTION: Final = -1
LATE_ANSWERS_REMEMBERED: Final = 8


class QueueServices(Protocol):
    """What the queue needs of its charger: less than :class:`~simulators.services.Services`,
    since the queue is what sends the CALLs."""

    @property
    def identity(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def timers(self) -> Timers: ...

    @property
    def config(self) -> ConfigStore: ...

    @property
    def stats(self) -> Stats: ...

    def write_frame(self, data: bytes) -> None:
        """Put one message in the outbox for the shell to send."""
        ...


class OutboundCall:
    """A CALL of ours, queued or in flight."""

    __slots__ = (
        "action",
        "attempts",
        "callback",
        "not_before",
        "payload",
        "sent_at",
        "session",
        "transactional",
        "unique_id",
    )

    def __init__(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None,
        *,
        transactional: bool,
        session: Session | None,
    ) -> None:
        self.action = action
        self.payload = payload
        self.callback = callback
        self.transactional = transactional
        self.session = session
        self.attempts = 0
        self.not_before = 0.0  # loop time before which a retry must not go out
        self.sent_at = 0.0
        self.unique_id = ""

    def settle(self, result: dict[str, Any] | None, error: CallError | None) -> None:
        """Tell the caller how it ended."""
        if self.callback is not None:
            self.callback(result, error)


class CallQueue:
    """The outbound queue of one charger; answers to its CALLs are matched here."""

    def __init__(
        self,
        services: QueueServices,
        *,
        call_timeout: float,
        validate_outbound: bool,
        keep_raw: bool,
    ) -> None:
        self._services = services
        self.call_timeout = call_timeout
        self.validate_outbound = validate_outbound
        self.keep_raw = keep_raw
        self.waiting: deque[OutboundCall] = deque()
        self.in_flight: OutboundCall | None = None
        self.raw_inbox: deque[bytes] = deque()
        self._last_unique_id = 0
        self._raw_call_ids: set[str] = set()
        # ids whose answer may still come after its timeout
        self._timed_out_ids: deque[str] = deque(maxlen=LATE_ANSWERS_REMEMBERED)
        self._raw_sent = False
        services.timers.handle(Timer.CALL_TIMEOUT, self._timeout_due)

    # -- looking

    @property
    def drained(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return not self.waiting and self.in_flight is None

    @property
    def transactional_count(self) -> int:
        """Transaction messages waiting, including one in flight."""
        waiting = sum(1 for call in self.waiting if call.transactional)
        return waiting + (1 if self.in_flight and self.in_flight.transactional else 0)

    def has_pending(self, action: str) -> bool:
        """Whether a CALL of ``action`` is waiting or in flight."""
        if any(call.action == action for call in self.waiting):
            return True
        return self.in_flight is not None and self.in_flight.action == action

    # -- queueing and sending

    def enqueue(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None,
        *,
        transactional: bool,
        session: Session | None,
        front: bool,
    ) -> None:
        """Queue a CALL (at the front for BootNotification)."""
        call = OutboundCall(action, payload, callback, transactional=transactional, session=session)
        if front:
            self.waiting.appendleft(call)
        else:
            self.waiting.append(call)

    def send_next(self, now: float, *, boot_only: bool) -> None:
        """Send the next CALL if none is in flight; ``boot_only`` until registered.

        A retry that is not due yet holds back the whole queue: transaction messages must
        reach the central system in order.
        """
        if self.in_flight is not None or not self.waiting:
            return
        call = self.waiting[0]
        if boot_only and call.action != "BootNotification":
            return
        if call.not_before > now:
            self._services.timers.start(Timer.CALL_RETRY, call.not_before)
            return
        self.waiting.popleft()
        payload = call.payload
        session = call.session
        if session is not None and call.action != "StartTransaction":
            # Errata §3.18: messages of a transaction whose Start never got through carry -1.
            transaction_id = session.transaction_id
            payload["transactionId"] = (
                transaction_id if transaction_id is not None else UNDELIVERED_TRANSACTION
            )
        self._last_unique_id += 1
        call.unique_id = str(self._last_unique_id)
        call.sent_at = now
        call.attempts += 1
        services = self._services
        if self.validate_outbound and not is_valid_request(call.action, payload):
            violation = validate_request(call.action, payload)
            services.stats.protocol_error(
                services.identity,
                f"sent invalid {call.action}: {violation.description if violation else '?'}",
            )
        services.write_frame(dump_call(call.unique_id, call.action, payload))
        services.stats.calls_sent += 1
        self.in_flight = call
        services.timers.start(Timer.CALL_TIMEOUT, now + self.call_timeout)

    def send_raw(self, data: bytes) -> None:
        """Send an arbitrary message; answers to it go to :attr:`raw_inbox`."""
        self._raw_sent = True
        frame = parse_frame(data)
        if isinstance(frame, Call):
            self._raw_call_ids.add(frame.unique_id)
        self._services.write_frame(data)

    # -- answers

    def on_result(self, frame: CallResult, now: float) -> None:
        """A CALLRESULT arrived."""
        call = self.in_flight
        if call is None or frame.unique_id != call.unique_id:
            self._unmatched(frame.unique_id, "CALLRESULT", frame)
            return
        self._land(call, now)
        payload = frame.payload
        if not is_valid_response(call.action, payload):
            violation = validate_response(call.action, payload)
            services = self._services
            services.stats.protocol_error(
                services.identity,
                f"invalid {call.action} answer: {violation.description if violation else '?'}",
            )
        call.settle(payload, None)

    def on_call_error(self, frame: CallErrorFrame, now: float) -> None:
        """A CALLERROR arrived."""
        call = self.in_flight
        if call is None or frame.unique_id != call.unique_id:
            self._unmatched(frame.unique_id, "CALLERROR", frame)
            return
        self._land(call, now)
        stats = self._services.stats
        stats.callerrors_received += 1
        stats.note(
            self._services.identity,
            f"CALLERROR for {call.action}: {frame.code} {frame.description}",
        )
        self._retry_or_fail(call, now, CallError(frame.code, frame.description, frame.details))

    def keep_unparsed(self, data: bytes | str) -> bool:
        """Keep a frame we could not parse for :attr:`raw_inbox`, if raw messages are in use."""
        if not (self.keep_raw and self._raw_sent):
            return False
        self.raw_inbox.append(data.encode() if isinstance(data, str) else data)
        return True

    def _land(self, call: OutboundCall, now: float) -> None:
        self.in_flight = None
        self._services.timers.cancel(Timer.CALL_TIMEOUT)
        self._services.stats.record_latency(now - call.sent_at)

    def _unmatched(self, unique_id: str, kind: str, frame: CallResult | CallErrorFrame) -> None:
        stats = self._services.stats
        if unique_id in self._timed_out_ids:
            self._timed_out_ids.remove(unique_id)
            stats.late_answers += 1  # already counted as a timeout
            return
        if unique_id in self._raw_call_ids or (self.keep_raw and self._raw_sent):
            self._raw_call_ids.discard(unique_id)
            self.raw_inbox.append(_frame_bytes(frame))
            return
        stats.protocol_error(self._services.identity, f"{kind} with unexpected id {unique_id!r}")

    def _timeout_due(self, _connector_id: int, now: float) -> None:
        call = self.in_flight
        if call is None:
            return
        self.in_flight = None
        self._timed_out_ids.append(call.unique_id)
        stats = self._services.stats
        stats.timeouts += 1
        stats.note(
            self._services.identity, f"no answer to {call.action} in {self.call_timeout:g} s"
        )
        self._retry_or_fail(call, now, CallTimeout(f"no answer to {call.action}"))

    def _retry_or_fail(self, call: OutboundCall, now: float, error: CallError) -> None:
        if call.transactional:
            services = self._services
            attempts = services.config.get_int("TransactionMessageAttempts")
            if call.attempts < attempts:
                interval = services.config.get_int("TransactionMessageRetryInterval")
                call.not_before = services.clock.after(now, interval * call.attempts)
                self.waiting.appendleft(call)
                services.stats.retries += 1
                return
            services.stats.dropped_messages += 1
            services.stats.note(
                services.identity, f"{call.action} dropped after {call.attempts} attempts"
            )
        call.settle(None, error)

    # -- the connection goes

    def keep_transactional(self) -> list[OutboundCall]:
        """The connection is gone: keep transaction messages (the one in flight first, its
        attempt not counted), return the other CALLs, which are lost."""
        lost: list[OutboundCall] = []
        in_flight, self.in_flight = self.in_flight, None
        if in_flight is not None:
            if in_flight.transactional:
                in_flight.attempts = max(0, in_flight.attempts - 1)
                self.waiting.appendleft(in_flight)
            else:
                lost.append(in_flight)
        kept: deque[OutboundCall] = deque()
        for call in self.waiting:
            (kept if call.transactional else lost).append(call)
        self.waiting = kept
        self._raw_call_ids.clear()
        return lost

    def drop_all(self) -> int:
        """The charger is done: forget what is still queued; returns the transaction
        messages among it, which the central system will never see."""
        unsent = sum(1 for call in self.waiting if call.transactional)
        self.waiting.clear()
        return unsent


def _frame_bytes(frame: CallResult | CallErrorFrame) -> bytes:
    if isinstance(frame, CallResult):
        return dump_callresult(frame.unique_id, frame.payload)
    return dump_callerror(frame.unique_id, frame.code, frame.description, frame.details)
