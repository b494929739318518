"""Outgoing OCPI calls: the one place csms talks HTTP to a roaming partner.

Every call gets the 2.2.1 headers (transport_and_format §Authorization header, §Unique
message IDs, §Message Routing Headers), is checked against the outgoing-call rules first
(csms.core.targets), and is logged with its correlation id, never with a token. httpx
errors end here: callers see PartnerUnreachable, PartnerRefused or UnsafeTarget.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import httpx
import orjson
import structlog

from csms.core.roaming import PartnerReply, authorization_header, is_success
from csms.core.targets import Target, parse_target, target_problem
from csms.errors import PartnerRefused, PartnerUnreachable, UnsafeTarget

log = structlog.get_logger("csms.ocpi")

MAX_REPLY_BYTES = 5_000_000


class OcpiClient:
    """An httpx client with the OCPI rules; one per process, closed at shutdown."""

    def __init__(
        self,
        *,
        country_code: str,
        party_id: str,
        timeout: float,
        allow_private_targets: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._from = {"OCPI-from-country-code": country_code, "OCPI-from-party-id": party_id}
        self._timeout = timeout
        self._allow_private = allow_private_targets
        # Redirects are not followed: a partner could point one at a private address.
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def check_target(self, url: str) -> None:
        """Raise UnsafeTarget when csms may not call this URL (docs/ocpi.md, "Security")."""
        target = parse_target(url)
        if isinstance(target, str):
            raise UnsafeTarget(f"{url}: {target}")
        problem = target_problem(await _addresses(target), allow_private=self._allow_private)
        if problem is not None:
            raise UnsafeTarget(f"{url}: {problem}")

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str,
        unencoded: bool = False,
        body: Any = None,
        to_party: tuple[str, str] | None = None,
        time_limit: float | None = None,
    ) -> PartnerReply:
        """One OCPI request; the reply when the partner answered with a 1xxx status.

        Raises:
            UnsafeTarget: the URL may not be called; nothing was sent.
            PartnerUnreachable: no connection, a timeout, HTTP 5xx, or no OCPI envelope.
            PartnerRefused: HTTP 4xx or an OCPI status outside 1xxx.
        """
        await self.check_target(url)
        # A call made while serving a partner's request carries that request's correlation
        # id (transport_and_format §Unique message IDs), so the two log lines meet.
        bound = structlog.contextvars.get_contextvars().get("correlation_id")
        correlation_id = bound if isinstance(bound, str) else str(uuid.uuid4())
        headers = {
            "Authorization": authorization_header(token, unencoded=unencoded),
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": correlation_id,
        }
        if to_party is not None:
            # Routing headers on functional modules only (transport_and_format §Message
            # Routing): not on versions and credentials.
            headers |= self._from | {
                "OCPI-to-country-code": to_party[0],
                "OCPI-to-party-id": to_party[1],
            }
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        where = {"method": method, "url": url, "correlation_id": correlation_id}
        try:
            response = await self._http.request(
                method, url, content=content, headers=headers, timeout=time_limit or self._timeout
            )
        except httpx.HTTPError as exc:
            log.warning("ocpi_call_out_failed", **where, error=type(exc).__name__)
            raise PartnerUnreachable(f"{method} {url}: {type(exc).__name__}") from exc
        reply = _reply(method, url, response)
        log.info(
            "ocpi_call_out",
            **where,
            http_status=response.status_code,
            ocpi_status=reply.status_code if isinstance(reply, PartnerReply) else None,
            ms=round((time.monotonic() - started) * 1000),
        )
        if not isinstance(reply, PartnerReply):
            raise reply
        return reply


def _reply(
    method: str, url: str, response: httpx.Response
) -> PartnerReply | PartnerUnreachable | PartnerRefused:
    """The reply, or the error it amounts to (status_codes)."""
    what = f"{method} {url}"
    if response.status_code >= 500:
        return PartnerUnreachable(f"{what}: HTTP {response.status_code}")
    envelope = _envelope(response)
    status = envelope.get("status_code") if envelope is not None else None
    message = envelope.get("status_message") if envelope is not None else None
    if response.status_code >= 400 or (isinstance(status, int) and not is_success(status)):
        detail = f"{what}: HTTP {response.status_code}"
        if isinstance(status, int):
            detail += f", OCPI {status}"
        if isinstance(message, str) and message:
            detail += f" {message[:200]}"
        return PartnerRefused(
            detail,
            http_status=response.status_code,
            ocpi_status=status if isinstance(status, int) else None,
        )
    if envelope is None or not isinstance(status, int):
        return PartnerUnreachable(f"{what}: the answer is not an OCPI response")
    return PartnerReply(
        http_status=response.status_code,
        status_code=status,
        data=envelope.get("data"),
        status_message=message if isinstance(message, str) else None,
        location=response.headers.get("Location"),
    )


def _envelope(response: httpx.Response) -> dict[str, Any] | None:
    if len(response.content) > MAX_REPLY_BYTES:
        return None
    try:
        parsed = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def _addresses(target: Target) -> list[str]:
    """The IP addresses a host resolves to (an IP literal is its own)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})
