"""The operator dashboard at `/`: server-rendered pages, command forms, a live event stream.

Pages are Jinja2 templates (csms/api/templates); the only JavaScript is
csms/api/static/dashboard.js, served by csms. Live updates come from the events the outbox
relay has just published (csms/events/fanout.py), sent to the browser as server-sent
events: the same stream MQTT consumers get, pushed, not polled (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from csms.api.context import ApiContext
from csms.api.dashboard_auth import (
    CSRF_COOKIE,
    DashboardAuth,
    Visitor,
    csrf_cookie,
    csrf_ok,
    read_form,
    remote_address,
)
from csms.api.dashboard_circuits import add_circuit_pages
from csms.api.dashboard_partners import add_partner_pages
from csms.api.dashboard_render import NO_STORE, Renderer, templates_for, to_login
from csms.api.registry import error_texts
from csms.api.views import charge_point_out, transaction_out
from csms.config import DashboardSettings
from csms.core.fleet import FleetFilter, chart_points, fleet_counts
from csms.core.fleet import charger_state as classify
from csms.errors import CommandError
from csms.store import chargers, commands, fleet, security, transactions

KEEP_ALIVE = 15.0  # seconds between comments on an idle stream, so proxies keep it open
PAGE = 100

# The command buttons: action -> the form fields of its OCPP 1.6 request (§5 of the spec).
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "RemoteStartTransaction": ("connectorId", "idTag"),
    "RemoteStopTransaction": ("transactionId",),
    "Reset": ("type",),
    "UnlockConnector": ("connectorId",),
    "ChangeAvailability": ("connectorId", "type"),
    "TriggerMessage": ("requestedMessage", "connectorId"),
    "GetConfiguration": ("key",),
    "ChangeConfiguration": ("key", "value"),
}
_INTEGER_FIELDS = {"connectorId", "transactionId"}


def add_dashboard(
    app: FastAPI, ctx: ApiContext, settings: DashboardSettings, *, open_access: bool
) -> None:
    """Mount the dashboard's pages, forms, stream and static files on the API app."""
    templates = templates_for(ctx.clock)
    auth = DashboardAuth(ctx=ctx, settings=settings, open_access=open_access)
    render = Renderer(templates, auth)
    app.mount("/static", StaticFiles(directory=str(files("csms.api") / "static")), name="static")
    router = APIRouter(include_in_schema=False)
    _login_routes(router, auth, templates)
    _page_routes(router, ctx, render)
    # The other sections, one module each (dashboard_render.py says how to add one).
    add_circuit_pages(router, ctx, render)
    add_partner_pages(router, ctx, render)
    _command_routes(router, ctx, auth)
    _stream_route(router, ctx, auth)
    app.include_router(router)


def _safe_next(target: str | None) -> str:
    # Only a path of this site: "//host" or "https://..." would send the visitor away.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


# -- login -----------------------------------------------------------------------------------


def _login_routes(router: APIRouter, auth: DashboardAuth, templates: Jinja2Templates) -> None:
    @router.get("/login")
    async def login_form(
        request: Request, target: Annotated[str | None, Query(alias="next")] = None
    ) -> Response:
        token = csrf_cookie(request)
        response = templates.TemplateResponse(
            request,
            "login.html",
            {"visitor": None, "csrf": token, "next": _safe_next(target), "error": None},
            headers=NO_STORE,
        )
        auth.keep_csrf_cookie(request, response, token)
        return response

    @router.post("/login")
    async def log_in(request: Request) -> Response:
        try:
            form = await read_form(request)
        except ValueError:
            form = {}
        expected = request.cookies.get(CSRF_COOKIE, "")
        if not expected or not csrf_ok(form.get("csrf"), expected):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
        outcome = await auth.log_in(
            username=form.get("username", "")[:64],
            password=form.get("password", "")[:128],
            remote=remote_address(request),
        )
        target = _safe_next(form.get("next"))
        if outcome.token is not None:
            moved = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
            auth.set_session(request, moved, outcome.token)
            return moved
        if outcome.retry_after is not None:
            error, code = "too many failed logins; try again in a minute", 429
        else:
            error, code = "wrong username or password", 401
        response = templates.TemplateResponse(
            request,
            "login.html",
            {"visitor": None, "csrf": expected, "next": target, "error": error},
            status_code=code,
            headers=NO_STORE,
        )
        if outcome.retry_after is not None:
            response.headers["Retry-After"] = str(int(outcome.retry_after) + 1)
        return response

    @router.post("/logout")
    async def log_out(request: Request) -> Response:
        visitor = await auth.visitor(request)
        await _checked_form(request, visitor)
        await auth.log_out(request)
        response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
        response.delete_cookie("csms_session", path="/")
        return response


async def _checked_form(request: Request, visitor: Visitor | None) -> dict[str, str]:
    """The form of a state-changing POST, once its CSRF token matches the visitor's.

    Raises:
        HTTPException: 401 not logged in, 403 CSRF token missing or wrong (or not a form).
    """
    if visitor is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
    try:
        form = await read_form(request)
    except ValueError:
        form = {}  # not a form, so no token: refused below like any cross-site post
    if not csrf_ok(form.get("csrf"), visitor.csrf_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return form


# -- pages -----------------------------------------------------------------------------------


def _page_routes(router: APIRouter, ctx: ApiContext, render: Renderer) -> None:
    async def fleet_view(wanted: FleetFilter, search: str, offset: int) -> dict[str, Any]:
        rows = await ctx.read(fleet.fleet_rows)
        now = ctx.clock()
        states = [
            classify(row, online=row.charge_point_id in ctx.chargers, now=now) for row in rows
        ]
        shown = [state for state in states if state.matches(wanted, search)]
        return {
            "counts": fleet_counts(states),
            "chargers": shown[offset : offset + PAGE],
            "shown": len(shown),
            "offset": offset,
            "page": PAGE,
            "wanted": wanted.value,
            "search": search,
            "filters": [choice.value for choice in FleetFilter],
        }

    @router.get("/", response_class=HTMLResponse)
    async def fleet_page(
        request: Request,
        state: FleetFilter = FleetFilter.ALL,
        q: Annotated[str, Query(max_length=100)] = "",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)
        view = await fleet_view(state, q, offset)
        return render.page(request, visitor, "fleet.html", **view)

    @router.get("/fleet-table", response_class=HTMLResponse)
    async def fleet_table(
        request: Request,
        state: FleetFilter = FleetFilter.ALL,
        q: Annotated[str, Query(max_length=100)] = "",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        """The counts and table alone, re-fetched when a live event says they changed."""
        visitor = await render.visitor(request)
        if visitor is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
        view = await fleet_view(state, q, offset)
        return render.page(request, visitor, "fleet_table.html", **view)

    async def charger_view(charge_point_id: str) -> dict[str, Any] | None:
        async def query(session: Any) -> dict[str, Any] | None:
            row = await chargers.get_charge_point(session, charge_point_id)
            if row is None:
                return None
            connectors = await chargers.list_connectors(session, [row.id])
            texts = await error_texts(session, connectors)
            active = await fleet.active_transactions(session, charge_point_id=row.id)
            samples = (
                await fleet.chart_samples(session, transaction_id=active[-1].id)
                if active and active[-1].id is not None
                else []
            )
            recent, _ = await commands.list_commands(
                session, charge_point_id=row.id, limit=20, offset=0
            )
            return {
                "charger": charge_point_out(
                    row, connectors, connected=row.id in ctx.chargers, error_texts=texts
                ),
                "active": [transaction_out(tx) for tx in active],
                "chart": _chart_json(samples),
                "events": await fleet.recent_events(session, charge_point_id=row.id),
                "commands": recent,
                "security_events": await security.list_security_events(
                    session, charge_point_id=row.id, limit=20
                ),
            }

        found: dict[str, Any] | None = await ctx.read(query)
        return found

    @router.get("/chargers/{charge_point_id}", response_class=HTMLResponse)
    async def charger_page(request: Request, charge_point_id: str) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)
        view = await charger_view(charge_point_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "charge point not found")
        return render.page(
            request,
            visitor,
            "charger.html",
            command_fields=COMMAND_FIELDS,
            **view,
        )

    @router.get("/chargers/{charge_point_id}/status", response_class=HTMLResponse)
    async def charger_status(request: Request, charge_point_id: str) -> Response:
        """The connectors and running sessions alone, re-fetched on live events."""
        visitor = await render.visitor(request)
        if visitor is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
        view = await charger_view(charge_point_id)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "charge point not found")
        return render.page(request, visitor, "charger_status.html", **view)

    @router.get("/sessions", response_class=HTMLResponse)
    async def sessions_page(
        request: Request,
        charger: Annotated[str | None, Query(max_length=48)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)
        rows, total = await ctx.read(
            lambda session: fleet.latest_transactions(
                session, charge_point_id=charger or None, limit=PAGE, offset=offset
            )
        )
        return render.page(
            request,
            visitor,
            "sessions.html",
            sessions=[transaction_out(row) for row in rows],
            total=total,
            offset=offset,
            page=PAGE,
            charger=charger or "",
        )

    @router.get("/sessions/{transaction_id}", response_class=HTMLResponse)
    async def session_page(request: Request, transaction_id: int) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)

        async def query(session: Any) -> tuple[Any, Any]:
            row = await transactions.get_transaction(session, transaction_id)
            samples = await fleet.chart_samples(session, transaction_id=transaction_id)
            return row, samples

        row, samples = await ctx.read(query)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "transaction not found")
        tx = transaction_out(row)
        end = tx.stop_timestamp or ctx.clock()
        duration = (end - tx.start_timestamp).total_seconds() if tx.start_timestamp else None
        return render.page(
            request,
            visitor,
            "session.html",
            tx=tx,
            duration=duration,
            chart=_chart_json(samples),
        )


def _chart_json(samples: list[Any]) -> str:
    """The chart's points for the page, as JSON the script reads (W and Wh as numbers)."""
    points = [
        {
            "t": int(point.at.timestamp() * 1000),
            "w": _number(point.power_w),
            "wh": _number(point.energy_wh),
        }
        for point in chart_points(samples)
    ]
    # Embedded in a <script type="application/json">: "</" must not close the element.
    return orjson.dumps(points).decode().replace("</", "<\\/")


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)  # the browser's chart draws floats


# -- commands --------------------------------------------------------------------------------


def command_payload(action: str, form: dict[str, str]) -> dict[str, Any]:
    """The OCPP 1.6 request of a command button's form; empty optional fields left out.

    Raises:
        ValueError: an integer field is not an integer.
    """
    payload: dict[str, Any] = {}
    for field in COMMAND_FIELDS[action]:
        text = form.get(field, "").strip()
        if not text:
            continue
        if field in _INTEGER_FIELDS:
            try:
                payload[field] = int(text)
            except ValueError:
                raise ValueError(f"{field}: not an integer") from None
        elif action == "GetConfiguration" and field == "key":
            payload[field] = [key.strip() for key in text.split(",") if key.strip()]
        else:
            payload[field] = text
    return payload


def _command_routes(router: APIRouter, ctx: ApiContext, auth: DashboardAuth) -> None:
    @router.post("/chargers/{charge_point_id}/commands/{action}")
    async def send_command(request: Request, charge_point_id: str, action: str) -> Response:
        """A command button: JSON for the page's script, else back to the charger page."""
        visitor = await auth.visitor(request)
        form = await _checked_form(request, visitor)
        assert visitor is not None
        if not visitor.may_command:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"a {visitor.role.value} may not send commands"
            )
        if action not in COMMAND_FIELDS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no button for {action}")
        wants_json = "application/json" in request.headers.get("accept", "")
        try:
            payload = command_payload(action, form)
            result = await ctx.commands.run(
                charge_point_id, action, payload, requested_by=f"dashboard:{visitor.name}"
            )
        except ValueError as exc:
            body: dict[str, Any] = {"ok": False, "status": 422, "detail": str(exc)}
        except CommandError as exc:
            body = {"ok": False, "status": exc.status, "detail": str(exc), **exc.fields}
        else:
            body = {"ok": True, "status": 200, "response": result.response}
        if wants_json:
            return JSONResponse(body, status_code=body["status"])
        return RedirectResponse(
            f"/chargers/{quote(charge_point_id)}#commands", status.HTTP_303_SEE_OTHER
        )


# -- live stream -----------------------------------------------------------------------------


def _stream_route(router: APIRouter, ctx: ApiContext, auth: DashboardAuth) -> None:
    @router.get("/live")
    async def live(
        request: Request, charger: Annotated[str | None, Query(max_length=48)] = None
    ) -> Response:
        """Server-sent events: each published event as `event: <type>`, data the CloudEvent."""
        visitor = await auth.visitor(request)
        if visitor is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
        return StreamingResponse(
            _events(ctx, charger),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


async def _events(ctx: ApiContext, charger: str | None) -> AsyncIterator[bytes]:
    with ctx.live.subscribe(charger) as subscription:
        # A first comment, so that the browser's EventSource reports the stream open.
        yield b": live\n\n"
        while True:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), KEEP_ALIVE)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if event is None:
                # Shut down, or too far behind: the page reloads what it shows.
                yield b"event: reset\ndata: {}\n\n"
                return
            yield b"event: " + event.type.encode() + b"\ndata: " + event.payload + b"\n\n"
