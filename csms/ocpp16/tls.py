"""TLS on the wss:// listener, run so that a failed handshake is seen (SecWP A00.FR.408).

The event loop's own TLS server drops a failed handshake silently: the WebSocket layer
never hears of the connection, so a charger with an expired or untrusted certificate, or
one that speaks TLS 1.1, left no trace. asyncio's does; so does uvloop's (`csms serve`
runs on it when installed): its server-side handshake waiter only closes the transport,
and its SSLProtocol logs an `ssl.SSLError` (an OSError) only in debug mode
(uvloop/handles/streamserver.pyx `__on_ssl_connected`, uvloop/sslproto.pyx
`_fatal_error`). Here each accepted TCP connection, on either loop, starts TLS itself
with asyncio's SSLProtocol and, when the handshake fails, reports the peer address, the
reason, and the subject of the client certificate when it can be read: in TLS 1.2 the
client's Certificate message travels in the clear, so the first bytes of the connection
are kept until the handshake ends (TLS 1.3 encrypts it, so there the identity stays
unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from asyncio import sslproto
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection
from websockets.frames import DATA_OPCODES, CloseCode, Frame
from websockets.protocol import Event, State

from csms.core.security import ClientCertificate
from csms.core.security_events import SecurityEventType
from csms.ocpp16.limits import FragmentBound, Limits

# A client's TLS 1.2 handshake up to its Certificate message is a few KiB; the bytes kept
# for one connection are capped so that a peer cannot make csms hold more.
_RECORD_LIMIT = 64 * 1024
_HANDSHAKE = 22
_CHANGE_CIPHER_SPEC = 20
_APPLICATION_DATA = 23
_CERTIFICATE = 11

_VERSION_REASONS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "VERSION_TOO_LOW", "NO_PROTOCOLS_AVAILABLE"}
)


@dataclass(frozen=True)
class HandshakeFailure:
    """A TLS handshake that failed, as far as it can be told without an identity."""

    remote_address: str | None
    reason: str
    # The SecWP §8 security event it is, or None when it is not one (a reset, a timeout).
    kind: SecurityEventType | None
    # The subject of the client certificate, when the charger sent one in the clear.
    certificate: ClientCertificate | None


FailureHook = Callable[[HandshakeFailure], None]


def describe_failure(exc: BaseException) -> tuple[str, SecurityEventType | None]:
    """A short reason safe to log, and the security event type of a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # A00.FR.407: an invalid client certificate terminates the connection.
        reason = exc.verify_message or exc.reason or "certificate verify failed"
        return str(reason), SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE
    if isinstance(exc, ssl.SSLError):
        code = str(exc.reason or type(exc).__name__)
        if code in _VERSION_REASONS:
            # A00.FR.314: TLS below 1.2 is terminated.
            return code.lower(), SecurityEventType.INVALID_TLS_VERSION
        if code == "NO_SHARED_CIPHER":
            return code.lower(), SecurityEventType.INVALID_TLS_CIPHER_SUITE
        if "CERTIFICATE" in code:
            return code.lower(), SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE
        return code.lower(), None
    if isinstance(exc, (TimeoutError, ConnectionAbortedError)):
        return "handshake timed out", None
    if isinstance(exc, ConnectionError):
        return "connection lost during the handshake", None
    return type(exc).__name__, None


def client_certificate_in(handshake: bytes) -> bytes | None:
    """The DER of the first certificate in a client's plaintext TLS 1.2 Certificate message.

    `handshake` is what the client sent, from its first byte. Returns None for TLS 1.3
    (the message is encrypted), for a client that sent no certificate, and for anything
    that does not parse.
    """
    messages = bytearray()
    offset = 0
    while offset + 5 <= len(handshake):
        kind = handshake[offset]
        length = int.from_bytes(handshake[offset + 3 : offset + 5], "big")
        fragment = handshake[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if kind in (_CHANGE_CIPHER_SPEC, _APPLICATION_DATA):
            break  # everything after this is encrypted
        if kind == _HANDSHAKE:
            messages += fragment
    position = 0
    while position + 4 <= len(messages):
        kind = messages[position]
        length = int.from_bytes(messages[position + 1 : position + 4], "big")
        body = bytes(messages[position + 4 : position + 4 + length])
        position += 4 + length
        if kind == _CERTIFICATE and len(body) >= 6:
            first = int.from_bytes(body[3:6], "big")
            der = body[6 : 6 + first]
            return der if first and len(der) == first else None
    return None


def certificate_subject(der: bytes) -> ClientCertificate | None:
    """CN and O of a certificate (unverified: it only names who tried)."""
    try:
        subject = x509.load_der_x509_certificate(der).subject
    except ValueError:
        return None

    def first(oid: x509.ObjectIdentifier) -> str | None:
        values = subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    return ClientCertificate(
        common_name=first(NameOID.COMMON_NAME), organization=first(NameOID.ORGANIZATION_NAME)
    )


class _Recorder(asyncio.BufferedProtocol):
    """Passes the socket's bytes to the TLS protocol and keeps the first of them."""

    def __init__(self, inner: sslproto.SSLProtocol) -> None:
        self.inner = inner
        self.seen = bytearray()
        self._buffer: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def get_buffer(self, sizehint: int) -> Any:
        self._buffer = self.inner.get_buffer(sizehint)
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if len(self.seen) < _RECORD_LIMIT:
            self.seen += memoryview(self._buffer)[: min(nbytes, _RECORD_LIMIT - len(self.seen))]
        self.inner.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        # asyncio's SSLProtocol may return True (keep the transport open); typeshed says None.
        keep_open: bool | None = self.inner.eof_received()  # type: ignore[func-returns-value]
        return keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


@dataclass(frozen=True)
class TlsSettings:
    context: ssl.SSLContext
    handshake_timeout: float
    shutdown_timeout: float
    on_failure: FailureHook


class HeardConnection(ServerConnection):
    """A ServerConnection that notes when the charger last sent anything: an OCPP frame,
    a ping or a pong (the silence rule, docs/ocpp.md "Connecting"), and that bounds the
    fragments of a message (`limits.FragmentBound`)."""

    last_heard = 0.0

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fragments = FragmentBound(limits) if limits is not None else None

    def process_event(self, event: Event) -> None:
        if self._refuse_fragment(event):
            return
        super().process_event(event)

    def _refuse_fragment(self, event: Event) -> bool:
        """websockets' side of `FragmentBound`: fail the connection with 1009 when a
        message comes in too many fragments or too slowly, and drop what follows."""
        if self.protocol.state is not State.OPEN:
            return isinstance(event, Frame) and event.opcode in DATA_OPCODES
        if self._fragments is None or not isinstance(event, Frame):
            return False
        if event.opcode not in DATA_OPCODES:
            return False
        reason = self._fragments.receive_frame(fin=event.fin, now=self.loop.time())
        if reason is None:
            return False
        # RFC 6455 §7.4.1: 1009, the message is too big to process (here: too fragmented).
        self.protocol.fail(CloseCode.MESSAGE_TOO_BIG, reason)
        with contextlib.suppress(Exception):
            self.send_data()
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.last_heard = self.loop.time()
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        super().data_received(data)


ReadyHook = Callable[[asyncio.Transport], None]


def accept_tls(
    transport: asyncio.BaseTransport,
    app: asyncio.BaseProtocol,
    settings: TlsSettings,
    on_ready: ReadyHook,
) -> None:
    """Run the server side of a TLS handshake on an accepted TCP connection.

    `app` receives the decrypted stream; `on_ready` is called with the TLS transport once
    the handshake succeeds (bytes may reach `app` just before that). A failed handshake
    closes the connection and is reported to `settings.on_failure`. Shared by both
    WebSocket transports.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    tls = sslproto.SSLProtocol(
        loop,
        app,
        settings.context,
        waiter,
        server_side=True,
        call_connection_made=False,
        ssl_handshake_timeout=settings.handshake_timeout,  # type: ignore[arg-type]
        ssl_shutdown_timeout=settings.shutdown_timeout,
    )
    recorder = _Recorder(tls)
    transport.set_protocol(recorder)
    recorder.connection_made(transport)
    waiter.add_done_callback(partial(_handshake_done, transport, recorder, settings, on_ready))


def _handshake_done(
    transport: asyncio.BaseTransport,
    recorder: _Recorder,
    settings: TlsSettings,
    on_ready: ReadyHook,
    waiter: asyncio.Future[None],
) -> None:
    error = waiter.exception() if not waiter.cancelled() else TimeoutError()
    if error is None and recorder.inner._app_transport is None:
        # The peer went away cleanly before the handshake finished.
        error = ConnectionResetError()
    if error is None:
        transport.set_protocol(recorder.inner)  # recording ends with the handshake
        on_ready(recorder.inner._app_transport)
        return
    transport.close()
    peer = transport.get_extra_info("peername")
    reason, kind = describe_failure(error)
    der = client_certificate_in(bytes(recorder.seen))
    settings.on_failure(
        HandshakeFailure(
            remote_address=str(peer[0]) if peer else None,
            reason=reason,
            kind=kind,
            certificate=certificate_subject(der) if der else None,
        )
    )


def tls_connection_class(settings: TlsSettings) -> type[HeardConnection]:
    """A websockets ServerConnection that runs the TLS handshake on its TCP connection
    first, and reports a handshake that fails to `settings.on_failure`."""

    class TlsServerConnection(HeardConnection):
        _tls_ready = False
        # What the TLS layer decrypted before the WebSocket was told the connection is up
        # (the upgrade request may come in the same segment as the client's Finished).
        _early: bytes = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accept_tls(transport, self, settings, self._tls_up)

        def _tls_up(self, transport: asyncio.Transport) -> None:
            self._tls_ready = True
            super().connection_made(transport)
            early, self._early = self._early, b""
            if early:
                super().data_received(early)

        def connection_lost(self, exc: Exception | None) -> None:
            # The TLS layer reports a connection lost during its handshake too; the
            # WebSocket never started then, so there is nothing to tear down.
            if self._tls_ready:
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._tls_ready:
                super().data_received(data)
            else:
                self._early += data

        def eof_received(self) -> None:
            if self._tls_ready:
                super().eof_received()

    return TlsServerConnection
