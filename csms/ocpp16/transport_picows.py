"""The picows transport: OCPP-J over picows (a Cython WebSocket layer), with websockets' rules.

picows parses and frames about twice as fast as websockets (docs/performance.md), but
its upgrade hook is synchronous, and admission reads the database and may verify a
password. So each accepted connection starts as an `Upgrading` protocol: it reads the
HTTP request (websockets' parser, so both transports see the same `Request`), pauses
reading, runs the admission hook, and either writes the refusal (401/403/404/429, before
any upgrade) or hands the connection, with the bytes read so far, to a picows
`WSProtocol`. From there `PicowsSocket` gives the OCPP layer the `recv`/`send`/`close`
it uses on websockets (sockets.py), with the same limits: ocpp.max_frame_size (1009),
back-pressure both ways, pings and the close handshake.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Generic, TypeVar, cast

import structlog
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, SecurityError
from websockets.frames import Close, CloseCode
from websockets.http11 import Request, Response
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

from csms.ocpp16.sockets import MAX_QUEUE, WRITE_LIMIT, OcppSocket, Peer
from csms.ocpp16.tls import TlsSettings, accept_tls

log = structlog.get_logger("csms.ocpp")

A = TypeVar("A")
# (the connection, its upgrade request) -> what the session needs, or the HTTP refusal.
AdmitHook = Callable[[Peer, Request], Awaitable[A | Response]]
# Serves one upgraded connection until it closes.
ServeHook = Callable[[OcppSocket, A], Awaitable[None]]

# picows reads at most this much of an upgrade request (its _http_max_size).
_MAX_REQUEST = 16 * 1024
_RESUME_READING_AT = MAX_QUEUE // 4
# One logger adapter for every connection: given a plain Logger, picows would create a
# child logger per connection and never free it.
_PICOWS_LOG = logging.LoggerAdapter(logging.getLogger("picows.csms"), {})


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


class PicowsServer(Generic[A]):
    """One listening socket: upgrades through `admit`, then `serve` per connection."""

    def __init__(
        self,
        *,
        admit: AdmitHook[A],
        serve: ServeHook[A],
        options: PicowsOptions,
        tls: TlsSettings | None = None,
    ) -> None:
        self.admit = admit
        self.serve = serve
        self.options = options
        # TLS run by the connection, so that failed handshakes are seen (tls.py).
        self.tls = tls
        self.upgrading: set[Upgrading[A]] = set()
        self.connections: set[PicowsSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def listen(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None, backlog: int
    ) -> None:
        """Start listening; `ssl_context` is TLS run by the event loop (failures unseen)."""
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if ssl_context is not None:
            extra = {"ssl": ssl_context, "ssl_handshake_timeout": self.options.handshake_timeout}
        self._server = await loop.create_server(
            lambda: Upgrading(self), host, port, backlog=backlog, **extra
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    def close(self, close_connections: bool = True) -> None:
        """Stop listening; with `close_connections`, close every connection with 1001."""
        if self._server is not None:
            self._server.close()
        if not close_connections:
            return
        for upgrading in list(self.upgrading):
            upgrading.abort()
        for connection in list(self.connections):
            self.spawn(connection.close(CloseCode.GOING_AWAY, "server shutdown"))

    async def wait_closed(self) -> None:
        """Wait until the listener is closed and every connection's handler has returned."""
        if self._server is not None:
            await self._server.wait_closed()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def connected(self, connection: PicowsSocket, admission: A) -> None:
        self.connections.add(connection)
        self.spawn(self._serve(connection, admission))

    async def _serve(self, connection: PicowsSocket, admission: A) -> None:
        code, reason = CloseCode.NORMAL_CLOSURE, ""
        try:
            await self.serve(connection, admission)
        except Exception:
            # As websockets does: a handler that crashed closes its connection with 1011.
            log.exception("connection_handler_failed")
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
        finally:
            await connection.close(code, reason)
            self.connections.discard(connection)

    def spawn(self, coroutine: Awaitable[None]) -> None:
        """Run `coroutine` as a task that `wait_closed` waits for."""
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class Upgrading(asyncio.Protocol, Generic[A]):
    """An accepted connection until its upgrade: reads the request, admits or refuses it."""

    def __init__(self, server: PicowsServer[A]) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._peer: Any = None
        self._data = bytearray()
        self._reader = StreamReader()
        self._parser: Generator[None, None, Request] | None = Request.parse(self._reader.read_line)
        next(self._parser)
        self._timer: asyncio.TimerHandle | None = None

    # -- what admission reads (sockets.Peer) ------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    @property
    def remote_address(self) -> Any:
        return self._peer

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        server.upgrading.add(self)
        self._peer = transport.get_extra_info("peername")
        # Like websockets' open_timeout: the TLS handshake, the request and its admission.
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(server.options.handshake_timeout, self.abort)
        if server.tls is not None:
            accept_tls(transport, self, server.tls, self._ready)
        else:
            # Not an isinstance check: uvloop's transports do not derive from asyncio's.
            self._ready(cast(asyncio.Transport, transport))

    def _ready(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        if self._data:
            self._parse()

    def data_received(self, data: bytes) -> None:
        self._data += data
        self._reader.feed_data(data)
        if self._transport is not None and self._parser is not None:
            self._parse()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def abort(self) -> None:
        """Drop the connection (handshake timeout, shutdown)."""
        self._done()
        if self._transport is not None:
            self._transport.abort()

    def _done(self) -> None:
        self._server.upgrading.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the upgrade -----------------------------------------------------------------------

    def _parse(self) -> None:
        assert self._parser is not None
        try:
            next(self._parser)
        except StopIteration as parsed:
            self._parser = None
            self._admit(parsed.value)
            return
        except (EOFError, SecurityError, ValueError) as exc:
            self._parser = None
            self._respond(_plain(HTTPStatus.BAD_REQUEST, f"invalid HTTP request: {exc}"))
            return
        if len(self._data) >= _MAX_REQUEST:
            self._parser = None
            self._respond(_plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request too large"))

    def _admit(self, request: Request) -> None:
        # Nothing more is read until the charger is admitted: a client must wait for the
        # 101 before it sends frames (RFC 6455 §4.1).
        self.transport.pause_reading()
        # Tracked by the server, so that a shutdown waits for admissions under way.
        self._server.spawn(self._run_admission(request))

    async def _run_admission(self, request: Request) -> None:
        outcome: A | Response
        try:
            outcome = await self._server.admit(self, request)
        except Exception:
            log.exception("upgrade_failed", path=request.path[:200])
            outcome = _plain(HTTPStatus.INTERNAL_SERVER_ERROR, "upgrade failed")
        if self._transport is None or self._transport.is_closing():
            return  # the client went away meanwhile
        if isinstance(outcome, Response):
            self._respond(outcome)
        else:
            self._hand_over(request, outcome)

    def _respond(self, response: Response) -> None:
        self._done()
        response.headers["Server"] = self._server.options.server_header
        response.headers["Connection"] = "close"
        self.transport.write(response.serialize())
        self.transport.close()

    def _hand_over(self, request: Request, admission: A) -> None:
        self._done()
        server = self._server
        options = server.options
        connection = PicowsSocket(request=request, options=options)

        def accept(upgrade: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            return connection.accept(lambda: server.connected(connection, admission))

        protocol = _ws_protocol(accept, options)
        transport = self.transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        # picows reads the request again from these bytes, checks the upgrade headers
        # (400 when they are wrong) and answers 101.
        _feed(protocol, bytes(self._data))
        transport.resume_reading()


def _ws_protocol(accept: Callable[[WSUpgradeRequest], Any], options: PicowsOptions) -> Any:
    return WSProtocol(
        None,  # host and port: client side only
        None,  # path: client side only
        False,  # is_client_side
        accept,
        _PICOWS_LOG,
        True,  # disconnect_on_exception
        None,  # handshake timeout: the request is there already
        # picows' auto-ping runs a task per connection; PicowsSocket pings on one timer.
        False,  # enable_auto_ping
        20.0,  # auto_ping_idle_timeout (unused)
        20.0,  # auto_ping_reply_timeout (unused)
        WSAutoPingStrategy.PING_WHEN_IDLE,
        False,  # enable_auto_pong: PicowsSocket answers pings, and notes them as heard
        options.max_frame_size,
        None,  # extra headers: client side only
        # picows' smallest: OCPP-J frames are small, and the buffer doubles for one that is
        # not. Every idle charger holds it (P3, memory per connection).
        2 * 1024,
    )


def _feed(protocol: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(-1)
        count = min(len(buffer), len(view))
        buffer[:count] = view[:count]
        protocol.buffer_updated(count)
        view = view[count:]


def _plain(status: HTTPStatus, reason: str) -> Response:
    body = f"{status.value} {status.phrase}: {reason}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return Response(status.value, status.phrase, Headers(headers), body)


class PicowsSocket(WSListener):
    """One upgraded connection, as `ChargerConnection` uses it (sockets.OcppSocket)."""

    # Slots and a plain list for the queue: every idle charger holds one of these.
    __slots__ = (
        "_drained",
        "_ending",
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
        try:
            async with asyncio.timeout(self._options.close_timeout):
                await asyncio.shield(self.disconnected)
        except TimeoutError:
            transport.disconnect(False)
            await asyncio.shield(self.disconnected)

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
