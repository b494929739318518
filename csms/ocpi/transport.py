"""OCPI transport (OCPI 2.2.1 transport_and_format): the response envelope, unique message
ids, body limits, pagination and call logging, for every route of the OCPI listener."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog
from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms.core.clock import format_utc
from csms.core.roaming import OcpiStatus
from csms.errors import OcpiRequestError
from csms.events.models_ocpi_roaming import parse_ocpi_datetime

log = structlog.get_logger("csms.ocpi")

MAX_LIMIT = 100
"""The most objects one GET returns: the X-Limit header (transport_and_format §Paginated
Response)."""


def envelope(
    data: Any,
    *,
    now: datetime,
    status: int = OcpiStatus.SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """transport_and_format §Response format: {data, status_code, status_message, timestamp}."""
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    body["status_code"] = int(status)
    if message:
        body["status_message"] = message[:255]
    body["timestamp"] = format_utc(now)
    return Response(
        orjson.dumps(body),
        status_code=http_status,
        media_type="application/json",
        headers=headers,
    )


class OcpiMiddleware:
    """Request and correlation ids echoed (transport_and_format §Unique message IDs), the
    body size bounded, and one log line per call, never with the Authorization header."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, clock: Callable[[], datetime]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value for key, value in scope["headers"]}
        request_id = _header(headers, "x-request-id") or str(uuid.uuid4())
        correlation_id = _header(headers, "x-correlation-id") or str(uuid.uuid4())
        echoed = [
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-correlation-id", correlation_id.encode("latin-1")),
        ]
        started = time.monotonic()
        status = {"code": 0}

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *echoed]}
            await send(message)

        declared = _header(headers, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send_with_ids)
        else:
            received = {"bytes": 0}

            async def bounded() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    received["bytes"] += len(message.get("body", b""))
                    if received["bytes"] > self.max_body_bytes:
                        raise _TooLarge
                return message

            with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
                try:
                    await self.app(scope, bounded, send_with_ids)
                except _TooLarge:
                    if not status["code"]:
                        await self._too_large(send_with_ids)
        state = scope.get("state") or {}
        log.info(
            "ocpi_call_in",
            method=scope["method"],
            path=scope["path"],
            http_status=status["code"],
            partner_id=state.get("partner_id"),
            correlation_id=correlation_id,
            request_id=request_id,
            ms=round((time.monotonic() - started) * 1000),
        )

    async def _too_large(self, send: Send) -> None:
        response = envelope(
            None,
            now=self.clock(),
            status=OcpiStatus.CLIENT_ERROR,
            message=f"the body is larger than {self.max_body_bytes} bytes",
            http_status=413,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    """The request body went past the limit while it was read."""


def _header(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    # An id is echoed in a header: keep it printable and short.
    return text[:100] if text and text.isprintable() else None


# -- pagination (transport_and_format §Pagination) -------------------------------------------


@dataclass(frozen=True)
class PageQuery:
    """The paginated-request parameters: offset, limit, date_from, date_to."""

    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None


def page_query(request: Request, *, date_from_required: bool = False) -> PageQuery:
    """The request's pagination parameters; the limit is capped at MAX_LIMIT.

    Raises:
        OcpiRequestError: 2001 naming the parameter that is not valid.
    """
    params = request.query_params
    offset = _integer(params.get("offset"), "offset", default=0, minimum=0)
    limit = min(_integer(params.get("limit"), "limit", default=MAX_LIMIT, minimum=0), MAX_LIMIT)
    date_from = _datetime(params.get("date_from"), "date_from")
    date_to = _datetime(params.get("date_to"), "date_to")
    if date_from_required and date_from is None:
        raise OcpiRequestError(
            "date_from: required", ocpi_status=OcpiStatus.INVALID_PARAMETERS, http_status=400
        )
    return PageQuery(offset=offset, limit=limit, date_from=date_from, date_to=date_to)


def _integer(text: str | None, name: str, *, default: int, minimum: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < minimum or len(text) > 9:
        raise OcpiRequestError(
            f"{name}: not a number of {minimum} or more",
            ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            http_status=400,
        )
    return int(text)


def _datetime(text: str | None, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        parsed = parse_ocpi_datetime(text)
    except ValueError as exc:
        raise OcpiRequestError(
            f"{name}: {exc}", ocpi_status=OcpiStatus.INVALID_PARAMETERS, http_status=400
        ) from exc
    assert isinstance(parsed, datetime)
    return parsed


def paginated(
    items: Sequence[Any],
    *,
    total: int,
    query: PageQuery,
    request: Request,
    base_url: str,
    now: datetime,
    headers: dict[str, str],
) -> Response:
    """A page of objects with X-Total-Count, X-Limit, and a Link to the next page when this
    is not the last one ("The Link should also contain any filters present in the original
    request")."""
    out = {**headers, "X-Total-Count": str(total), "X-Limit": str(MAX_LIMIT)}
    following = query.offset + len(items)
    if following < total and items:
        params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
        params |= {"offset": str(following), "limit": str(query.limit)}
        out["Link"] = f'<{base_url}{request.url.path}?{urlencode(params)}>; rel="next"'
    return envelope(list(items), now=now, headers=out)
