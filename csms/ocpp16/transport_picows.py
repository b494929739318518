"""The picows transport: OCPP-J over picows (a Cython WebSocket layer), with websockets' rules.

picows parses and frames about twice as fast as websockets (docs/performance.md), but
its upgrade hook is synchronous, and admission reads the database and may verify a
password. So each accepted connection starts as an `Upgrading` protocol: it reads the
HTTP request (websockets' parser, so both transports see the same `Request`), pauses
reading, runs the admission hook, and either writes the refusal (401/403/404/429, before
any upgrade) or hands the connection, with the bytes read so far, to a picows
`WSProtocol`. From there `PicowsSocket` (picows_socket.py) gives the OCPP layer the
`recv`/`send`/`close` it uses on websockets (sockets.py), with the same limits:
ocpp.max_frame_size (1009), back-pressure both ways, pings and the close handshake.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator
from http import HTTPStatus
from typing import Any, Generic, TypeVar, cast

import structlog
from picows import (
    WSAutoPingStrategy,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]
from websockets.datastructures import Headers
from websockets.exceptions import SecurityError
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.streams import StreamReader

from csms.ocpp16.picows_socket import PicowsOptions, PicowsSocket
from csms.ocpp16.sockets import OcppSocket, Peer
from csms.ocpp16.tls import TlsSettings, accept_tls

log = structlog.get_logger("csms.ocpp")

A = TypeVar("A")
# (the connection, its upgrade request) -> what the session needs, or the HTTP refusal.
AdmitHook = Callable[[Peer, Request], Awaitable[A | Response]]
# Serves one upgraded connection until it closes.
ServeHook = Callable[[OcppSocket, A], Awaitable[None]]

# picows reads at most this much of an upgrade request (its _http_max_size).
_MAX_REQUEST = 16 * 1024
# What an `Upgrading` reads with once it has handed its connection over.
_SPENT = StreamReader()
# One logger adapter for every connection: given a plain Logger, picows would create a
# child logger per connection and never free it.
_PICOWS_LOG = logging.LoggerAdapter(logging.getLogger("picows.csms"), {})


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
        if self._parser is None:
            return  # read already: what follows is the WebSocket's, picows gets it
        self._reader.feed_data(data)
        if self._transport is not None:
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
        # uvloop's transport keeps this protocol's `data_received` (it is not a buffered
        # protocol) for the connection's life: let go of what the upgrade no longer needs.
        self._data = bytearray()
        self._reader = _SPENT
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
