"""One upgraded OCPP-J connection on picows, as the OCPP layer uses it (sockets.OcppSocket).

`PicowsSocket` is picows' listener for the connection: frames in (fragments put together
under ocpp.max_frame_size, UTF-8 checked, pings answered), a queue the connection loop
reads with `recv`, `send` with websockets' back-pressure, keep-alive pings on one timer,
and the close handshake. transport_picows.py builds it after the upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, CloseCode
from websockets.http11 import Request
from websockets.typing import Subprotocol

from csms.ocpp16.limits import FragmentBound, Limits
from csms.ocpp16.sockets import MAX_QUEUE, WRITE_LIMIT

_RESUME_READING_AT = MAX_QUEUE // 4


@dataclass(frozen=True)
class PicowsOptions:
    """The WebSocket settings of a listener (ocpp.* in config.toml)."""

    subprotocol: Subprotocol
    max_frame_size: int
    ping_interval: float
    ping_timeout: float
    close_timeout: float
    handshake_timeout: float
    server_header: str = "csms"
    # Fragments per message and their time (ocpp.max_fragments, ocpp.fragment_timeout).
    limits: Limits | None = None


class PicowsSocket(WSListener):
    """One upgraded connection, as `ChargerConnection` uses it (sockets.OcppSocket)."""

    # Slots and a plain list for the queue: every idle charger holds one of these.
    __slots__ = (
        "_drained",
        "_ending",
        "_fragments",
        "_frames",
        "_keepalive",
        "_loop",
        "_on_connected",
        "_options",
        "_parts",
        "_parts_size",
        "_parts_text",
        "_reading_paused",
        "_transport",
        "_waiter",
        "_writing_paused",
        "disconnected",
        "last_heard",
        "remote_address",
        "request",
        "subprotocol",
    )

    def __init__(self, *, request: Request, options: PicowsOptions) -> None:
        self.request: Request | None = request
        self.subprotocol: Subprotocol | None = None
        self.remote_address: Any = None
        self._options = options
        self._loop = asyncio.get_running_loop()
        # When the charger last sent anything: a frame, a ping or a pong (loop time).
        self.last_heard = self._loop.time()
        self._transport: WSTransport | None = None
        self._frames: list[str | bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drained: list[asyncio.Future[None]] = []
        # A fragmented message being put together: its parts and whether it is text.
        self._parts: list[bytes] | None = None
        self._fragments = FragmentBound(options.limits) if options.limits is not None else None
        self._parts_size = 0
        self._parts_text = True
        self._ending = False
        self.disconnected: asyncio.Future[None] = self._loop.create_future()
        self._on_connected: Callable[[], None] | None = None
        self._keepalive: asyncio.TimerHandle | None = None

    def accept(self, on_connected: Callable[[], None]) -> WSUpgradeResponseWithListener:
        """The 101 answer, with ocpp1.6 when the charger offered it (OCPP-J §3.1)."""
        assert self.request is not None
        offered = [
            name.strip()
            for value in self.request.headers.get_all("Sec-WebSocket-Protocol")
            for name in value.split(",")
        ]
        headers = {"Server": self._options.server_header}
        if self._options.subprotocol in offered:
            headers["Sec-WebSocket-Protocol"] = self._options.subprotocol
            self.subprotocol = self._options.subprotocol
            # Kept only for the log of a charger that offered no ocpp1.6 (server.py).
            self.request = None
        self._on_connected = on_connected
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_101_response(headers), self)

    # -- WSListener ------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        underlying = transport.underlying_transport
        underlying.set_write_buffer_limits(high=WRITE_LIMIT)
        self.remote_address = underlying.get_extra_info("peername")
        # picows keeps the upgrade's request and response for the connection's life;
        # their headers are of no more use.
        transport.request.headers.clear()
        transport.response.headers.clear()
        if self._options.ping_interval > 0:
            self._ping_when_quiet()
        if self._on_connected is not None:
            self._on_connected()
            self._on_connected = None

    # -- keep-alive ------------------------------------------------------------------------

    def _ping_when_quiet(self) -> None:
        """Ping once nothing came for ocpp.ping_interval: a busy connection proves itself
        alive at no cost. One timer per connection, moved on when it fires."""
        now = self._loop.time()
        quiet_until = self.last_heard + self._options.ping_interval
        transport = self._transport
        if quiet_until > now or transport is None:
            self._keepalive = self._loop.call_at(quiet_until, self._ping_when_quiet)
            return
        transport.send_ping()
        options = self._options
        check = now + min(options.ping_timeout, options.ping_interval)
        self._keepalive = self._loop.call_at(check, self._pong_due, now)

    def _pong_due(self, pinged: float) -> None:
        if self.last_heard >= pinged:  # the pong, or anything else: the peer is there
            self._ping_when_quiet()
            return
        deadline = pinged + self._options.ping_timeout
        if deadline > self._loop.time():
            self._keepalive = self._loop.call_at(deadline, self._pong_due, pinged)
            return
        # As websockets does: a half-open connection is failed with 1011.
        self._keepalive = None
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.last_heard = self._loop.time()
        kind = frame.msg_type
        if kind == WSMsgType.TEXT and frame.fin and self._parts is None:
            try:
                text = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
                return
            self._push(text)
        elif kind == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif kind == WSMsgType.CLOSE:
            self._close_received(transport, frame)
        elif kind != WSMsgType.PONG:
            self._fragment(kind, frame)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._ending = True
        self._wake()
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_result(None)
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_result(None)
        self._drained.clear()

    # -- frames in -------------------------------------------------------------------------

    def _fragment(self, kind: WSMsgType, frame: WSFrame) -> None:
        if kind == WSMsgType.CONTINUATION:
            if self._parts is None:
                self._fail(CloseCode.PROTOCOL_ERROR, "unexpected continuation frame")
                return
        elif self._parts is not None:
            # RFC 6455 §5.4: a new message may not start inside a fragmented one.
            self._fail(CloseCode.PROTOCOL_ERROR, "expected a continuation frame")
            return
        elif frame.fin:
            self._push(frame.get_payload_as_bytes())  # a binary frame: dropped by the loop
            return
        else:
            self._parts, self._parts_size = [], 0
            self._parts_text = kind == WSMsgType.TEXT
        if self._fragments is not None:
            reason = self._fragments.receive_frame(fin=frame.fin, now=self._loop.time())
            if reason is not None:
                # RFC 6455 §7.4.1: 1009, the message is too big to process (too fragmented).
                self._fail(CloseCode.MESSAGE_TOO_BIG, reason)
                return
        self._parts_size += frame.payload_size
        limit = self._options.max_frame_size
        if self._parts_size > limit:
            # ocpp.max_frame_size bounds a whole message, as websockets' max_size does.
            self._fail(
                CloseCode.MESSAGE_TOO_BIG, f"message over size limit ({self._parts_size} > {limit})"
            )
            return
        self._parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return
        message, self._parts = b"".join(self._parts), None
        if not self._parts_text:
            self._push(message)
            return
        try:
            self._push(message.decode())
        except UnicodeDecodeError:
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")

    def _push(self, message: str | bytes) -> None:
        frames = self._frames
        frames.append(message)
        self._wake()
        if len(frames) >= MAX_QUEUE and not self._reading_paused and self._transport is not None:
            # The loop answers one CALL at a time; what the charger sends meanwhile waits in
            # the kernel's buffers, and then in its own.
            self._reading_paused = True
            self._transport.underlying_transport.pause_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close_received(self, transport: WSTransport, frame: WSFrame) -> None:
        # RFC 6455 §5.5.1: answer a close with a close, echoing its code; then the server
        # closes the TCP connection (§7.1.1).
        self._ending = True
        if not transport.is_close_frame_sent:
            code = frame.get_close_code()
            transport.send_close(WSCloseCode.OK if code == WSCloseCode.NO_INFO else code)
        transport.disconnect()
        self._wake()

    def _fail(self, code: int, reason: str) -> None:
        """Close the connection for a protocol violation (RFC 6455 §7.1.7)."""
        self._ending = True
        self._wake()
        transport = self._transport
        if transport is None:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        self._loop.call_later(self._options.close_timeout, transport.disconnect, False)

    # -- sockets.OcppSocket ----------------------------------------------------------------

    async def recv(self) -> str | bytes:
        frames = self._frames
        while not frames:
            if self._ending:
                raise self._closed()
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = frames.pop(0)  # at most MAX_QUEUE and a read's worth: a short list
        if self._reading_paused and len(frames) <= _RESUME_READING_AT and not self._ending:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.underlying_transport.resume_reading()
        return message

    async def send(self, message: str | bytes, text: bool | None = None) -> None:
        transport = self._transport
        if transport is None or self._ending or transport.is_close_frame_sent:
            raise self._closed()
        binary = not text if text is not None else isinstance(message, bytes)
        transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, message)
        while self._writing_paused and not self.disconnected.done():
            waiter = self._loop.create_future()
            self._drained.append(waiter)
            await waiter
        if self.disconnected.done():
            raise self._closed()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame, wait for the charger's (close_timeout at most), disconnect."""
        transport = self._transport
        if transport is None or self.disconnected.done():
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A shutdown past its grace: a charger that never answers the close (half-open,
            # behind a NAT) must not hold the process for close_timeout more.
            transport.disconnect(False)
            await asyncio.shield(self.disconnected)
            return
        try:
            async with asyncio.timeout(self._options.close_timeout):
                await asyncio.shield(self.disconnected)
        except TimeoutError:
            transport.disconnect(False)
            await asyncio.shield(self.disconnected)
        except asyncio.CancelledError:
            transport.disconnect(False)
            raise

    @property
    def close_code(self) -> int | None:
        """The code of the charger's close frame; 1006 without one; None while open."""
        if not self.disconnected.done():
            return None
        received = self._handshake()[0]
        return received.code if received is not None else CloseCode.ABNORMAL_CLOSURE

    @property
    def close_reason(self) -> str | None:
        if not self.disconnected.done():
            return None
        received = self._handshake()[0]
        return received.reason if received is not None else ""

    def _handshake(self) -> tuple[Close | None, Close | None, bool | None]:
        """The close frames received and sent, as websockets describes them."""
        handshake = self._transport.close_handshake if self._transport is not None else None
        if handshake is None:
            return None, None, None
        received = _close(handshake.recv)
        sent = _close(handshake.sent)
        both = received is not None and sent is not None
        return received, sent, handshake.recv_then_sent if both else None

    def _closed(self) -> ConnectionClosed:
        return ConnectionClosed(*self._handshake())


def _close(info: Any) -> Close | None:
    if info is None:
        return None
    code = info.code
    return Close(int(code.value if hasattr(code, "value") else code), info.reason or "")
