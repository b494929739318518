"""Outgoing webhook HTTP: the target guard (SSRF rules after DNS) and the bounded POST.

The guard resolves the URL's host, refuses it when any address is not public (unless
`webhooks.allow_private_targets`), and the POST then connects to the very address that
was checked, naming the host only in `Host` and TLS SNI. A DNS answer that changes between
the check and the connection (a rebind) therefore cannot send a delivery elsewhere.
httpx errors are turned into an `Answer` here, at the adapter's edge.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

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


class Sender:
    """POSTs deliveries of one subscription: bounded time, bounded answer, no redirects."""

    def __init__(
        self,
        *,
        guard: TargetGuard,
        connect_timeout: float,
        read_timeout: float,
        body_bytes: int,
        max_connections: int,
    ) -> None:
        self._guard = guard
        self._deadline = connect_timeout + read_timeout
        self._body_bytes = body_bytes
        self._client = httpx.AsyncClient(
            # Environment proxies would carry deliveries past the address checks.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Answer:
        """One attempt; never raises for what the network or the receiver does."""
        started = time.perf_counter()
        try:
            target = parse_target(url)
            address = await self._guard.address(target)
        except WebhookTargetRefused as exc:
            return Answer(None, f"refused: {exc}", _ms(started), None)
        request = self._client.build_request(
            "POST",
            httpx.URL(url).copy_with(host=address),
            content=body,
            headers={**headers, "host": _host_header(target)},
            # TLS: SNI and certificate checks against the name, not the address.
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
        )
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._client.send(request, stream=True)
                try:
                    text = await self._read_some(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return Answer(None, "timeout", _ms(started), None)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT]
            return Answer(None, error, _ms(started), None)
        return Answer(response.status_code, None, _ms(started), text)

    async def _read_some(self, response: httpx.Response) -> str:
        """At most `body_bytes` of the answer's body; the rest is never read."""
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk
            if len(kept) >= self._body_bytes:
                break
        return bytes(kept[: self._body_bytes]).decode("utf-8", "replace")


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
