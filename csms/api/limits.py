"""Bounds on what one API request may make csms read: its body size, and no NUL anywhere.

An ASGI middleware in front of FastAPI, so that nothing is parsed before the checks: a
100 MB body used to be read and parsed in full before its 422 (issue 13). Limits are
listed with their defaults in docs/security.md, "Limits and hostile input".
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A JSON escape of U+0000 that is not itself escaped (an even number of backslashes before).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# A body over the cap is read and dropped up to this many times the cap before the 413.
DRAIN_FACTOR = 8
# Seconds a client is asked to wait when the database is away (RFC 9110 §10.2.3).
RETRY_AFTER_SECONDS = 5


class RequestLimits:
    """Refuses, before the application reads it, a body over `max_body_bytes` (413) and a
    NUL character in the path, query or body (422: PostgreSQL text cannot hold one)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _refuse(send, 422, "NUL character in the request URL")
            return
        declared = _content_length(scope)
        body = None
        if declared is None or declared <= self.max_body_bytes:
            body = await self._read_body(receive)
        if body is None:
            await self._discard_body(receive)
            await _refuse(send, 413, self._too_big())
            return
        if b"\x00" in body or _JSON_NUL.search(body) or (_is_form(scope) and b"%00" in body):
            await _refuse(send, 422, "NUL character in the request body")
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_big(self) -> str:
        return f"request body over {self.max_body_bytes} bytes (api.max_body_bytes)"

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it grows past the cap (the rest is not read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _discard_body(self, receive: Receive) -> None:
        """Read and drop what the client is still sending (up to `DRAIN_FACTOR` times the
        cap, never kept), so that it reads our 413 instead of a reset connection."""
        left = DRAIN_FACTOR * self.max_body_bytes
        while left > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            left -= len(message.get("body", b""))


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _is_form(scope: Scope) -> bool:
    # The dashboard's login and forms: %00 there decodes to NUL.
    return (_header(scope, b"content-type") or b"").startswith(b"application/x-www-form")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str) -> None:
    content = orjson.dumps({"detail": detail})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    if status == 413:
        # The client may not have sent all of it; the connection is not reused.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
