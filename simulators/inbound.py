"""CALLs from the central system: validated, handed to the part that handles the action,
answered, and recorded for whoever watches (:class:`~simulators.charger.Charger` tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .model import IncomingCall
from .ocppj import (
    SECURITY_ACTIONS,
    Call,
    ErrorCode,
    dump_callerror,
    dump_callresult,
    is_valid_response,
    validate_request,
    validate_response,
)
from .services import Handler
from .stats import Stats

__all__ = ["InboundCalls", "ReplyServices"]


class ReplyServices(Protocol):
    """What answering needs of the charger."""

    @property
    def identity(self) -> str: ...

    @property
    def stats(self) -> Stats: ...

    def write_frame(self, data: bytes) -> None:
        """Put one message in the outbox for the shell to send."""
        ...

    def discard_after_reply(self) -> None:
        """Forget the work a failed handler left for after its answer."""
        ...


class InboundCalls:
    """Dispatch of the central system's CALLs to their handlers."""

    def __init__(
        self,
        services: ReplyServices,
        handlers: Mapping[str, Handler],
        *,
        security_extension: bool,
        validate_outbound: bool,
    ) -> None:
        self._services = services
        self._handlers = dict(handlers)
        # Security Whitepaper (edition 3); without it its actions are NotSupported.
        self.security_extension = security_extension
        self.validate_outbound = validate_outbound
        self.incoming_hook: Callable[[IncomingCall], None] | None = None

    def on_call(self, frame: Call, now: float) -> None:
        """Answer one CALL: CALLERROR when unknown, invalid or the handler fails."""
        stats = self._services.stats
        stats.calls_received += 1
        action, payload = frame.action, frame.payload
        handler = self._handlers.get(action)
        if action in SECURITY_ACTIONS and not self.security_extension:
            handler = None
        if handler is None:
            code = (
                ErrorCode.NOT_SUPPORTED if action in SECURITY_ACTIONS else ErrorCode.NOT_IMPLEMENTED
            )
            description = f"{action} is not supported by this charger"
            self.reply_error(frame.unique_id, code, description)
            self._record(frame, None, code.value, description)
            return
        violation = validate_request(action, payload)
        if violation is not None:
            stats.protocol_error(
                self._services.identity,
                f"invalid {action} from central system: {violation.description}",
            )
            self.reply_error(frame.unique_id, violation.code, violation.description)
            self._record(frame, None, violation.code.value, violation.description)
            return
        try:
            response = handler(payload, now)
        except Exception as exc:  # a simulator bug must not kill the charger
            self._services.discard_after_reply()
            stats.protocol_error(self._services.identity, f"{action} handler failed: {exc!r}")
            self.reply_error(frame.unique_id, ErrorCode.INTERNAL_ERROR, str(exc)[:255])
            self._record(frame, None, ErrorCode.INTERNAL_ERROR.value, str(exc))
            return
        self._reply(frame.unique_id, action, response)
        self._record(frame, response, None, "")

    def reply_error(self, unique_id: str, code: ErrorCode, description: str) -> None:
        """Send a CALLERROR."""
        self._services.write_frame(dump_callerror(unique_id, code.value, description))
        self._services.stats.callerrors_sent += 1

    def _reply(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        if self.validate_outbound and not is_valid_response(action, payload):
            violation = validate_response(action, payload)
            self._services.stats.protocol_error(
                self._services.identity,
                f"answered {action} invalidly: {violation.description if violation else '?'}",
            )
        self._services.write_frame(dump_callresult(unique_id, payload))

    def _record(
        self, frame: Call, response: dict[str, Any] | None, code: str | None, description: str
    ) -> None:
        hook = self.incoming_hook
        if hook is not None:
            hook(
                IncomingCall(
                    frame.unique_id, frame.action, frame.payload, response, code, description
                )
            )
