"""Outgoing webhook HTTP: the target guard (SSRF rules after DNS) and the bounded POST.

The guard resolves the URL's host, refuses it when any address is not public (unless
`webhooks.allow_private_targets`), and the POST then connects to the very address that
was checked, naming the host only in `Host` and TLS SNI. A DNS answer that changes between
the check and the connection (a rebind) therefore cannot send a delivery elsewhere.
Network and TLS errors are turned into an `Answer` here, at the adapter's edge.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from csms.core.webhooks import Target, check_addresses, parse_target
from csms.errors import WebhookTargetRefused

# Resolves a host name to IP address texts (the seam tests use for names that would
# need a real DNS server).
Resolve = Callable[[str, int], Awaitable[list[str]]]
# A resolved name is reused this long; the connection still goes to a checked address.
DNS_CACHE_SECONDS = 30.0
ERROR_TEXT = 300


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver (getaddrinfo), every address of the host."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class TargetGuard:
    """Decides, after DNS, whether csms may call a URL, and which address to connect to."""

    def __init__(self, *, allow_private: bool, resolve: Resolve = resolve_host) -> None:
        self._allow_private = allow_private
        self._resolve = resolve
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def check(self, url: str) -> None:
        """Raises WebhookTargetRefused when csms must not call the URL (API: 422)."""
        await self.address(parse_target(url), fresh=True)

    async def address(self, target: Target, *, fresh: bool = False) -> str:
        """The checked address to connect to.

        Raises:
            WebhookTargetRefused: the host does not resolve, or an address is refused.
        """
        if target.is_literal:
            addresses = [target.host]
        else:
            addresses = await self._addresses(target, fresh=fresh)
        check_addresses(target.host, addresses, allow_private=self._allow_private)
        return addresses[0]

    async def _addresses(self, target: Target, *, fresh: bool) -> list[str]:
        """The host's addresses; `fresh` (the API's check) neither uses nor fills the cache,
        so what a delivery connects to is always what the delivery itself resolved."""
        if fresh:
            return await self._resolve(target.host, target.port)
        key = (target.host, target.port)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        addresses = await self._resolve(target.host, target.port)
        if addresses:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + DNS_CACHE_SECONDS, addresses)
        return addresses


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: a status (None: no answer), or why there was none."""

    status_code: int | None
    error: str | None
    latency_ms: float
    body: str | None


class BadResponse(Exception):
    """The receiver's answer is not HTTP/1.1 as we can read it."""


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        self.writer.close()


# Keep-alive connections unused this long are not reused (receivers close theirs too).
IDLE_SECONDS = 30.0
_HEAD_LIMIT = 64 * 1024
_USER_AGENT = "csms-webhooks"


class Sender:
    """POSTs the deliveries of one subscription over HTTP/1.1 keep-alive connections.

    A small client of our own rather than httpx: a delivery is one POST with a body we
    built and an answer we read at most 1 KiB of, and httpx spent about 2 ms of CPU on
    each (its pool bookkeeping, two socket writes, a log record), a tenth of what the
    2,000 deliveries/s target allows (docs/performance.md, "Webhooks"). Here the socket
    is opened to the address the guard checked, the request is one write, and the answer
    is read within the time and size bounds; nothing follows a redirect.
    """

    def __init__(
        self,
        *,
        guard: TargetGuard,
        connect_timeout: float,
        read_timeout: float,
        body_bytes: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._guard = guard
        self._connect_timeout = connect_timeout
        self._deadline = connect_timeout + read_timeout
        self._body_bytes = body_bytes
        self._tls = tls
        self._idle: dict[tuple[str, str, int, str], list[_Connection]] = {}

    async def close(self) -> None:
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Answer:
        """One attempt; never raises for what the network or the receiver does."""
        started = time.perf_counter()
        try:
            target = parse_target(url)
            address = await self._guard.address(target)
        except WebhookTargetRefused as exc:
            return Answer(None, f"refused: {exc}", _ms(started), None)
        request = _request(target, url, headers, body)
        key = (target.scheme, address, target.port, target.host)
        try:
            async with asyncio.timeout(self._deadline):
                status, text, connection = await self._exchange(key, request)
        except TimeoutError:
            return Answer(None, "timeout", _ms(started), None)
        except (
            OSError,  # refused, reset, unreachable, TLS (ssl.SSLError)
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            BadResponse,
            ValueError,
        ) as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]
            return Answer(None, error, _ms(started), None)
        if connection is not None:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(connection)
        return Answer(status, None, _ms(started), text)

    async def _exchange(
        self, key: tuple[str, str, int, str], request: bytes
    ) -> tuple[int, str, _Connection | None]:
        """Send on an idle connection, or a new one; a kept-alive connection the receiver
        closed meanwhile is replaced once (nothing was answered on it)."""
        connection = self._reuse(key)
        if connection is not None:
            try:
                return await self._send(connection, request)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if getattr(exc, "partial", b""):
                    raise
                connection.close()
        return await self._send(await self._open(key), request)

    def _reuse(self, key: tuple[str, str, int, str]) -> _Connection | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    async def _open(self, key: tuple[str, str, int, str]) -> _Connection:
        scheme, address, port, host = key
        tls = None
        if scheme == "https":
            tls = self._tls or _default_tls()
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(
                address,
                port,
                ssl=tls,
                # TLS: SNI and the certificate check use the name, not the address.
                server_hostname=host if tls is not None else None,
                limit=_HEAD_LIMIT,
            )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer)

    async def _send(
        self, connection: _Connection, request: bytes
    ) -> tuple[int, str, _Connection | None]:
        connection.writer.write(request)
        await connection.writer.drain()
        try:
            status, text, reusable = await self._answer(connection.reader)
        except BaseException:
            connection.close()
            raise
        if not reusable:
            connection.close()
            return status, text, None
        return status, text, connection

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bool]:
        """The status, the first `body_bytes` of the body, and whether the connection can
        carry another request (the whole body read, no `connection: close`)."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise BadResponse("answer headers too long") from None
            status, fields = _parse_head(head)
            if not 100 <= status < 200:
                break  # 1xx interim answers (100 Continue) precede the real one
        if status in (204, 304):
            return status, "", fields.get("connection") != "close"
        length_text = fields.get("content-length")
        if length_text is not None and "transfer-encoding" not in fields:
            try:
                length = int(length_text)
            except ValueError:
                raise BadResponse("bad content-length") from None
            kept = await reader.readexactly(min(length, self._body_bytes))
            reusable = length <= self._body_bytes and fields.get("connection") != "close"
            return status, _text(kept), reusable
        if fields.get("transfer-encoding", "").endswith("chunked"):
            return await self._chunked(status, reader, close=fields.get("connection") == "close")
        # Until the receiver closes: read what the log keeps, then drop the connection.
        return status, _text(await reader.read(self._body_bytes)), False

    async def _chunked(
        self, status: int, reader: asyncio.StreamReader, *, close: bool
    ) -> tuple[int, str, bool]:
        """A chunked body (RFC 9112 §7.1): its first `body_bytes`; the connection is kept
        when the whole body, up to the last chunk and trailers, was read."""
        kept = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadResponse("bad chunk size") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return status, _text(kept), not close
            room = self._body_bytes - len(kept)
            if size > room:
                kept += await reader.readexactly(room)
                return status, _text(kept), False  # the rest is never read
            kept += await reader.readexactly(size)
            await reader.readexactly(2)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip().lower()
    return int(rest[:3]), fields


def _request(target: Target, url: str, headers: dict[str, str], body: bytes) -> bytes:
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {_host_header(target)}",
        f"user-agent: {_USER_AGENT}",
        f"content-length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _text(data: bytes | bytearray) -> str:
    return data.decode("utf-8", "replace")


_TLS: ssl.SSLContext | None = None


def _default_tls() -> ssl.SSLContext:
    """The system's trusted CAs, hostname checks on: made once, on first use."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
