"""One charger's OCPP-J connection: a thin loop that feeds the RPC session and runs handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.errors import (
    ChargerNotConnected,
    CommandRejected,
    CommandTimeout,
    InvalidAnswer,
    StoreError,
)
from csms.metrics import Metrics, monotonic
from csms.ocpp16.context import ChargerContext, Handler
from csms.ocpp16.rpc import Answer, Call, Dropped, Reply, RpcSession
from csms.ocpp16.schemas import ErrorCode

log = structlog.get_logger("csms.ocpp")


class ChargerConnection:
    """A live connection: CALLs from the charger in order, and our CALLs one at a time."""

    def __init__(
        self,
        *,
        websocket: ServerConnection,
        context: ChargerContext,
        rpc: RpcSession,
        handlers: Mapping[str, Handler],
        call_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.websocket = websocket
        self.metrics = metrics or Metrics()
        self.handlers = handlers
        self.context = context
        self.rpc = rpc
        self.call_timeout = call_timeout
        self._call_lock = asyncio.Lock()
        self._reply: asyncio.Future[Reply] | None = None
        self._calls_queued = 0

    @property
    def charge_point_id(self) -> str:
        return self.context.charge_point_id

    @property
    def calls_queued(self) -> int:
        """CSMS->charger CALLs outstanding or waiting for their turn."""
        return self._calls_queued

    async def serve(self) -> None:
        """Process frames until the socket closes. A CALL is answered before the next is read."""
        try:
            async for message in self.websocket:
                if isinstance(message, bytes):
                    # OCPP-J §4.1.2: frames are UTF-8 text; binary cannot be answered.
                    log.warning("frame_dropped", reason="binary frame")
                    continue
                await self._receive(message)
        except ConnectionClosed:
            pass
        finally:
            if self._reply is not None and not self._reply.done():
                self._reply.set_exception(
                    ChargerNotConnected("connection closed before the answer")
                )

    async def _receive(self, text: str) -> None:
        event = self.rpc.receive_text(text)
        if isinstance(event, Call):
            await self._run_handler(event)
        elif isinstance(event, Answer):
            if event.error_code is not None:
                log.warning("call_rejected", error_code=event.error_code.value, reason=event.reason)
                self.metrics.ocpp_message(event.action or "unknown", event.error_code.value, None)
            await self.websocket.send(event.frame, text=True)
        elif isinstance(event, Reply):
            if self._reply is not None and not self._reply.done():
                self._reply.set_result(event)
        elif isinstance(event, Dropped):
            log.warning("frame_dropped", reason=event.reason, frame=text[:200])

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
