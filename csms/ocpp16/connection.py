"""One charger's OCPP-J connection: a thin loop that feeds the RPC session and runs handlers."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import structlog
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from csms.errors import (
    ChargerNotConnected,
    CommandRejected,
    CommandTimeout,
    InvalidAnswer,
    StoreError,
)
from csms.metrics import Metrics, monotonic
from csms.ocpp16 import convert
from csms.ocpp16.context import ChargerContext, Handler
from csms.ocpp16.limits import LogBudget
from csms.ocpp16.rpc import Answer, Call, Dropped, Reply, RpcSession, shorten
from csms.ocpp16.schemas import ErrorCode
from csms.ocpp16.sockets import OcppSocket

log = structlog.get_logger("csms.ocpp")

_INDEX = re.compile(r"/\d+(?=/|$)")


class ChargerConnection:
    """A live connection: CALLs from the charger in order, and our CALLs one at a time."""

    def __init__(
        self,
        *,
        websocket: OcppSocket,
        context: ChargerContext,
        rpc: RpcSession,
        handlers: Mapping[str, Handler],
        call_timeout: float,
        metrics: Metrics | None = None,
        silence_limit: float | None = None,
        counters: Counter[str] | None = None,
        normalisations_logged: set[tuple[str, str, str]] | None = None,
    ) -> None:
        self.websocket = websocket
        self.metrics = metrics or Metrics()
        self.handlers = handlers
        self.context = context
        self.rpc = rpc
        self.call_timeout = call_timeout
        # Seconds without anything from the charger (frame, ping, pong) after which it
        # counts as gone, even though its socket is up (docs/ocpp.md, "Connecting");
        # None: no limit.
        self.silence_limit = silence_limit
        self.counters = counters if counters is not None else Counter()
        # Tolerant mode logs each kind of normalisation once per charger, not per message.
        self._logged = normalisations_logged if normalisations_logged is not None else set()
        self._call_lock = asyncio.Lock()
        self._reply: asyncio.Future[Reply] | None = None
        self._calls_queued = 0
        # Why csms closed the socket itself, for the disconnect event (None: the charger did).
        self.closed_because: str | None = None
        self._frame_heard = asyncio.get_running_loop().time()
        # Rejections are logged a few per minute per connection (docs/security.md).
        self._log_budget = LogBudget()
        self._watchdog: asyncio.TimerHandle | None = None
        self._silenced: asyncio.Future[None] | None = None

    @property
    def charge_point_id(self) -> str:
        return self.context.charge_point_id

    @property
    def calls_queued(self) -> int:
        """CSMS->charger CALLs outstanding or waiting for their turn."""
        return self._calls_queued

    async def serve(self) -> None:
        """Process frames until the socket closes. A CALL is answered before the next is read."""
        self._watch_silence()
        try:
            while True:
                message = await self.websocket.recv()
                if isinstance(message, bytes):
                    # OCPP-J §4.1.2: frames are UTF-8 text; binary cannot be answered.
                    log.warning("frame_dropped", reason="binary frame")
                    continue
                await self._receive(message)
        except ConnectionClosed as closed:
            if closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG:
                # RFC 6455 §7.4.1: 1009, a frame over ocpp.max_frame_size.
                self.counters["frames.too_big"] += 1
                log.warning("frame_too_big", reason=closed.sent.reason, code=closed.sent.code)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            if self._silenced is not None:
                await self._silenced  # the close it started, as if serve had closed itself
            if self._reply is not None and not self._reply.done():
                self._reply.set_exception(
                    ChargerNotConnected("connection closed before the answer")
                )

    def _watch_silence(self) -> None:
        """Check for silence when the limit runs out: one timer per connection, moved on
        when it fires, rather than a timeout around every read (docs/performance.md)."""
        limit = self.silence_limit
        if limit is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self._last_heard() + limit
        if deadline > loop.time():
            self._watchdog = loop.call_at(deadline, self._watch_silence)
            return
        # OCPP 1.6 §4.6: any message counts as a heartbeat, and with JSON a ping or pong
        # may stand in for one (OCPP-J §5.3). A charger that sent none of them for longer
        # than two intervals and the grace is gone, whatever its TCP socket says.
        self._watchdog = None
        self.counters["chargers.silent"] += 1
        log.warning("charger_silent", seconds=limit)
        self.closed_because = f"silent for {limit:g} s"
        # Closing ends the read that serve() waits in (ConnectionClosed).
        self._silenced = asyncio.ensure_future(
            self.close(code=CloseCode.GOING_AWAY, reason=self.closed_because)
        )

    def _last_heard(self) -> float:
        """When the charger last sent anything (a frame, ping or pong): loop time."""
        heard: float | None = getattr(self.websocket, "last_heard", None)
        if heard is None:
            # A plain ServerConnection (the benchmarks'): count from the last frame read.
            heard = self._frame_heard
        return max(heard, self._frame_heard)

    async def _receive(self, text: str) -> None:
        self._frame_heard = asyncio.get_running_loop().time()
        event = self.rpc.receive_text(text)
        if isinstance(event, Call):
            if event.normalised:
                self._report_normalised(event)
            if event.repaired:
                self._report_repaired(event)
            await self._run_handler(event)
        elif isinstance(event, Answer):
            if event.error_code is not None:
                self.counters["calls.rejected"] += 1
                if (left_out := self._log_allowed()) is not None:
                    log.warning(
                        "call_rejected",
                        error_code=event.error_code.value,
                        reason=event.reason,
                        left_out=left_out,
                    )
                self.metrics.ocpp_message(event.action or "unknown", event.error_code.value, None)
            await self.websocket.send(event.frame, text=True)
        elif isinstance(event, Reply):
            if self._reply is not None and not self._reply.done():
                self._reply.set_result(event)
        elif isinstance(event, Dropped):
            self.counters["frames.dropped"] += 1
            if (left_out := self._log_allowed()) is not None:
                log.warning(
                    "frame_dropped", reason=event.reason, frame=shorten(text), left_out=left_out
                )

    def _log_allowed(self) -> int | None:
        """None when this rejection goes unlogged; else how many were left out before it."""
        if not self._log_budget.allow(asyncio.get_running_loop().time()):
            self.counters["log.rejections_suppressed"] += 1
            return None
        return self._log_budget.take_suppressed()

    def _report_normalised(self, call: Call) -> None:
        for change in call.normalised:
            self.counters[f"leniency.{change.deviation.value}"] += 1
            key = (call.action, change.deviation.value, _INDEX.sub("/*", change.path))
            if key in self._logged:
                continue
            self._logged.add(key)
            log.warning(
                "payload_normalised",
                action=call.action,
                deviation=change.deviation.value,
                path=change.path,
                sent=_loggable(change.before),
                stored=_loggable(change.after),
            )

    def _report_repaired(self, call: Call) -> None:
        # OCPP 1.6 §4.10: a StopTransaction csms could not store as sent is kept repaired.
        for repair in call.repaired:
            self.counters["stops.repaired"] += 1
            log.warning(
                "stop_repaired",
                path=repair.path,
                sent=shorten(repr(repair.before)),
                stored=shorten(repr(repair.after)),
            )

    async def _run_handler(self, call: Call) -> None:
        handler = self.handlers[call.action]
        started = monotonic()
        outcome = "ok"
        try:
            payload = await handler(self.context, call.payload)
        except StoreError as exc:
            # Errata §3.3: a failure to process is a CALLERROR; InternalError makes it retry.
            log.error("call_failed", action=call.action, error=str(exc))
            frame = self.rpc.fail(call, ErrorCode.INTERNAL_ERROR, "storage unavailable, retry")
            outcome = ErrorCode.INTERNAL_ERROR.value
        except Exception:
            log.exception("handler_crashed", action=call.action)
            frame = self.rpc.fail(call, ErrorCode.INTERNAL_ERROR, "internal error")
            outcome = ErrorCode.INTERNAL_ERROR.value
        else:
            frame = self.rpc.answer(call, payload)
            self.rpc.accepted = self.context.accepted
        await self.websocket.send(frame, text=True)
        self.metrics.ocpp_message(call.action, outcome, monotonic() - started)

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (per-call override of ocpp.call_timeout)
    ) -> dict[str, Any]:
        """Send a CSMS->charger CALL and return the charger's CALLRESULT payload.

        Calls queue on a lock: one outstanding CALL per charger (OCPP-J §4.1.1).

        Raises:
            ChargerNotConnected: the socket closed before the answer.
            CommandTimeout: no answer within the timeout; a late answer is dropped by id.
            CommandRejected: the charger answered with a CALLERROR.
            InvalidAnswer: the charger's CALLRESULT breaks the action's 1.6 schema.
        """
        self._calls_queued += 1
        try:
            return await self._call_in_turn(action, payload, timeout or self.call_timeout)
        finally:
            self._calls_queued -= 1

    async def _call_in_turn(
        self, action: str, payload: dict[str, Any], seconds: float
    ) -> dict[str, Any]:
        async with self._call_lock:
            unique_id, frame = self.rpc.send_call(action, payload)
            self._reply = asyncio.get_running_loop().create_future()
            try:
                await self.websocket.send(frame, text=True)
                async with asyncio.timeout(seconds):
                    reply = await self._reply
            except TimeoutError:
                raise CommandTimeout(f"{action} got no answer in time") from None
            except ConnectionClosed:
                raise ChargerNotConnected("connection closed before the answer") from None
            finally:
                self.rpc.abandon_call(unique_id)
                self._reply = None
        if reply.payload is not None and reply.violation is None:
            self.rpc.allow_triggered(convert.triggered_actions(action, payload, reply.payload))
        if reply.error_code is not None:
            raise CommandRejected(
                error_code=reply.error_code,
                description=reply.error_description,
                details=reply.error_details,
            )
        assert reply.payload is not None
        if reply.violation is not None:
            log.warning("answer_invalid", action=action, reason=reply.violation.description)
            raise InvalidAnswer(
                error_code=reply.violation.code.value,
                description=reply.violation.description,
                response=reply.payload,
            )
        return reply.payload

    async def close(self, *, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code=code, reason=reason)


def _loggable(value: Any) -> Any:
    # A tolerant-mode value may be a megabyte long: the log gets its first characters.
    return shorten(value) if isinstance(value, str) else value
