"""The FastAPI application: charge points, id tags and transactions under /api/v1."""

import asyncio
import secrets
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.accounts import add_account_routes
from csms.api.auth import (
    Authenticator,
    Caller,
    Principal,
    guard,
    key_reader,
    require,
    require_metrics,
)
from csms.api.circuits import add_circuit_routes, circuit_error
from csms.api.cluster import add_cluster_routes
from csms.api.commands import add_command_routes, command_error_response
from csms.api.context import (
    ApiContext,
    IdentityPath,
    IdTagPath,
    Limit,
    Offset,
    TransactionIdPath,
    not_found,
)
from csms.api.dashboard import add_dashboard
from csms.api.limits import RETRY_AFTER_SECONDS, RequestLimits
from csms.api.locations import add_location_routes
from csms.api.partners import add_partner_routes
from csms.api.profiles import add_profile_routes
from csms.api.rates import add_rate_routes
from csms.api.registry import add_registry_routes, error_texts
from csms.api.schemas import (
    ChargePointIn,
    ChargePointOut,
    Counters,
    Health,
    IdTagIn,
    IdTagOut,
    IdTagStatus,
    MeterValueOut,
    Page,
    TransactionOut,
)
from csms.api.tariffs import add_tariff_routes
from csms.api.views import charge_point_out, id_tag_out, meter_value_out, transaction_out
from csms.api.wallet import add_wallet_routes, wallet_error
from csms.api.webhooks import add_webhook_routes
from csms.config import DashboardSettings
from csms.core.access import Scope
from csms.core.passwords import Scheme
from csms.core.registration import RegistrationStatus
from csms.core.security import password_bytes, password_problem
from csms.errors import CircuitError, CommandError, StoreError, WalletError
from csms.metrics import CONTENT_TYPE
from csms.store import chargers, locations, outbox, registry, tariffs, transactions


def create_api(
    *,
    context: ApiContext,
    token: str,
    metrics_open_on_loopback: bool = True,
    dashboard: DashboardSettings | None = None,
    max_body_bytes: int = 1024 * 1024,
) -> FastAPI:
    """Build the API. An empty token means an open API (loopback only, see config)."""
    ctx = context
    app = FastAPI(
        title="csms",
        summary="OCPP 1.6J central system: charge points, id tags and transactions",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(CommandError, command_error_response)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(WalletError, wallet_error)
    app.add_exception_handler(CircuitError, circuit_error)
    app.state.authenticator = Authenticator(
        token=token,
        read_key=key_reader(ctx.read),
        metrics_open_on_loopback=metrics_open_on_loopback,
    )
    # Each route declares its scope with require(Scope.X); `guard` holds the undeclared
    # ones to admin (csms/api/auth.py).
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(guard)])
    _charge_point_routes(router, ctx)
    _id_tag_routes(router, ctx)
    _transaction_routes(router, ctx)
    add_command_routes(router, ctx)
    add_registry_routes(router, ctx)
    add_location_routes(router, ctx, ctx.party)
    add_account_routes(router, ctx)
    add_tariff_routes(router, ctx)
    add_rate_routes(router, ctx)
    if ctx.wallet is not None:
        add_wallet_routes(router, ctx)
    add_webhook_routes(router, ctx)
    add_circuit_routes(router, ctx)
    add_profile_routes(router, ctx)
    add_partner_routes(router, ctx, ctx.partners)
    add_cluster_routes(router, ctx)
    _health_route(router, ctx)
    app.include_router(router)
    _metrics_route(app, ctx)
    dashboard = dashboard or DashboardSettings()
    if dashboard.enabled:
        add_dashboard(app, ctx, dashboard, open_access=not token)
    return app


async def _store_error(_request: Request, exc: Exception) -> JSONResponse:
    # docs/api.md: the database is away, ours to fix; the client may retry after a while.
    return JSONResponse(
        status_code=503,
        content={"detail": str(exc)},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        reasons.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse(status_code=422, content={"detail": "; ".join(reasons)})


# -- charge points -------------------------------------------------------------------------


def _charge_point_routes(router: APIRouter, ctx: ApiContext) -> None:
    async def load(session: AsyncSession, charge_point_id: str) -> ChargePointOut | None:
        row = await chargers.get_charge_point(session, charge_point_id)
        if row is None:
            return None
        connectors = await chargers.list_connectors(session, [row.id])
        texts = await error_texts(session, connectors)
        return charge_point_out(row, connectors, connected=ctx.connected(row), error_texts=texts)

    @router.get(
        "/charge-points",
        dependencies=[require(Scope.READ)],
        tags=["charge points"],
        summary="List charge points",
    )
    async def list_charge_points(
        registration: Annotated[RegistrationStatus | None, Query(alias="status")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[ChargePointOut]:
        """Charge points; `status=pending` lists those waiting for an operator's decision."""

        async def query(session: AsyncSession) -> Page[ChargePointOut]:
            rows, total = await chargers.list_charge_points(
                session,
                limit=limit,
                offset=offset,
                registration_status=registration.value if registration else None,
            )
            connectors = await chargers.list_connectors(session, [row.id for row in rows])
            texts = await error_texts(session, connectors)
            items = [
                charge_point_out(row, connectors, connected=ctx.connected(row), error_texts=texts)
                for row in rows
            ]
            return Page[ChargePointOut](items=items, total=total)

        result: Page[ChargePointOut] = await ctx.read(query)
        return result

    @router.get(
        "/charge-points/{charge_point_id}",
        dependencies=[require(Scope.READ)],
        tags=["charge points"],
    )
    async def get_charge_point(charge_point_id: str) -> ChargePointOut:
        found = await ctx.read(partial(load, charge_point_id=charge_point_id))
        if found is None:
            raise not_found("charge point")
        assert isinstance(found, ChargePointOut)
        return found

    @router.put(
        "/charge-points/{charge_point_id}",
        dependencies=[require(Scope.ADMIN)],
        tags=["charge points"],
    )
    async def put_charge_point(
        charge_point_id: IdentityPath, body: ChargePointIn, response: Response
    ) -> ChargePointOut:
        """Register or update a charge point; `password` is stored hashed and never returned."""
        values = body.model_dump(exclude_unset=True, exclude={"password", "connector_spec"})
        if body.connector_spec is not None:
            values["connector_spec"] = body.connector_spec.to_ocpi()
        if body.location_id is not None:
            place = partial(locations.get_location, location_id=body.location_id)
            if await ctx.read(place) is None:
                # Like an unknown userId on an id tag: the caller named what does not exist.
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"body.locationId: unknown location {body.location_id}",
                )
        if body.security_profile in (1, 2) and body.password is None:
            lookup = partial(chargers.get_charge_point, charge_point_id=charge_point_id)
            existing = await ctx.read(lookup)
            if existing is None or existing.password_hash is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"security profile {body.security_profile} needs a password",
                )
        if body.password is not None:
            problem = password_problem(body.password)
            if problem is not None:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problem)
            # SecWP A01.FR.08: only a salted hash is kept (docs/security.md, "Passwords");
            # scrypt, for text passwords, runs off the event loop.
            secret, salt = password_bytes(body.password), secrets.token_bytes(16)
            if ctx.passwords.scheme_for(secret) is Scheme.SCRYPT:
                values["password_hash"] = await asyncio.to_thread(
                    ctx.passwords.hash, secret, salt=salt
                )
            else:
                values["password_hash"] = ctx.passwords.hash(secret, salt=salt)
        created = await ctx.charger_flows.put(
            charge_point_id=charge_point_id, values=values, now=ctx.clock()
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        found = await ctx.read(partial(load, charge_point_id=charge_point_id))
        assert isinstance(found, ChargePointOut)
        return found

    @router.delete(
        "/charge-points/{charge_point_id}",
        dependencies=[require(Scope.ADMIN)],
        tags=["charge points"],
        status_code=204,
    )
    async def delete_charge_point(charge_point_id: str) -> None:
        if not await ctx.write(
            partial(chargers.delete_charge_point, charge_point_id=charge_point_id)
        ):
            raise not_found("charge point")

    async def decide(
        charge_point_id: str, decision: RegistrationStatus, principal: Principal
    ) -> ChargePointOut:
        found_before = await ctx.charger_flows.decide_registration(
            charge_point_id=charge_point_id,
            status=decision,
            decided_by=principal.name,
            now=ctx.clock(),
        )
        if not found_before:
            raise not_found("charge point")
        found = await ctx.read(partial(load, charge_point_id=charge_point_id))
        if found is None:  # deleted meanwhile
            raise not_found("charge point")
        assert isinstance(found, ChargePointOut)
        return found

    @router.post(
        "/charge-points/{charge_point_id}/accept",
        dependencies=[require(Scope.ADMIN)],
        tags=["charge points"],
    )
    async def accept_charge_point(
        charge_point_id: IdentityPath, principal: Caller
    ) -> ChargePointOut:
        """Accept a charger: its next BootNotification is answered Accepted (OCPP 1.6 §4.2).

        A connected Pending charger boots again when its retry interval is over; send it
        TriggerMessage BootNotification to make that happen now.
        """
        return await decide(charge_point_id, RegistrationStatus.ACCEPTED, principal)

    @router.post(
        "/charge-points/{charge_point_id}/reject",
        dependencies=[require(Scope.ADMIN)],
        tags=["charge points"],
    )
    async def reject_charge_point(
        charge_point_id: IdentityPath, principal: Caller
    ) -> ChargePointOut:
        """Reject a charger: its BootNotifications are answered Rejected, anything else
        SecurityError, and csms sends it nothing (OCPP 1.6 §4.2). A live connection is
        closed, so that the charger boots again and hears it."""
        found = await decide(charge_point_id, RegistrationStatus.REJECTED, principal)
        connection = ctx.chargers.get(charge_point_id)
        if connection is not None:
            await connection.close(code=1000, reason="rejected by the operator")
        return found

    @router.get(
        "/counters",
        dependencies=[require(Scope.READ)],
        tags=["operations"],
        summary="OCPP edge counters",
    )
    async def counters() -> Counters:
        """Failed TLS handshakes, refused and throttled logins, tolerant-mode normalisations,
        oversized frames and silent chargers, counted since start (docs/api.md)."""
        return Counters(counters=dict(sorted(ctx.counters.items())))


# -- id tags -------------------------------------------------------------------------------


def _id_tag_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/id-tags", dependencies=[require(Scope.READ)], tags=["id tags"], summary="List id tags"
    )
    async def list_id_tags(
        tag_status: Annotated[IdTagStatus | None, Query(alias="status")] = None,
        user_id: Annotated[str | None, Query(alias="userId", max_length=36)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[IdTagOut]:
        """Id tags, optionally only those with a status or of a user."""
        rows, total = await ctx.read(
            partial(
                registry.list_id_tags,
                status=tag_status.value if tag_status else None,
                user_id=user_id,
                limit=limit,
                offset=offset,
            )
        )
        return Page[IdTagOut](items=[id_tag_out(row) for row in rows], total=total)

    @router.get("/id-tags/{id_tag}", dependencies=[require(Scope.READ)], tags=["id tags"])
    async def get_id_tag(id_tag: IdTagPath) -> IdTagOut:
        row = await ctx.read(partial(registry.get_id_tag, id_tag=id_tag))
        if row is None:
            raise not_found("id tag")
        return id_tag_out(row)

    @router.put("/id-tags/{id_tag}", dependencies=[require(Scope.ADMIN)], tags=["id tags"])
    async def put_id_tag(id_tag: IdTagPath, body: IdTagIn, response: Response) -> IdTagOut:
        """Create or replace an id tag; Authorize and StartTransaction answer from it."""
        values: Mapping[str, Any] = {
            "status": body.status.value,
            "expiry_date": body.expiry_date,
            "parent_id_tag": body.parent_id_tag,
            "user_id": body.user_id,
        }
        if body.user_id is not None:
            user = await ctx.read(partial(registry.get_user, user_id=body.user_id))
            if user is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"body.userId: unknown user {body.user_id}",
                )
        created = await ctx.write(
            partial(registry.upsert_id_tag, id_tag=id_tag, values=dict(values), now=ctx.clock())
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        row = await ctx.read(partial(registry.get_id_tag, id_tag=id_tag))
        if row is None:  # deleted meanwhile
            raise not_found("id tag")
        return id_tag_out(row)

    @router.delete(
        "/id-tags/{id_tag}", dependencies=[require(Scope.ADMIN)], tags=["id tags"], status_code=204
    )
    async def delete_id_tag(id_tag: IdTagPath) -> None:
        if not await ctx.write(partial(registry.delete_id_tag, id_tag=id_tag)):
            raise not_found("id tag")


# -- transactions --------------------------------------------------------------------------


def _transaction_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/transactions",
        dependencies=[require(Scope.READ)],
        tags=["transactions"],
        summary="List transactions",
    )
    async def list_transactions(
        charge_point_id: Annotated[str | None, Query(alias="chargePointId")] = None,
        active: bool | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[TransactionOut]:
        rows, total = await ctx.read(
            partial(
                transactions.list_transactions,
                charge_point_id=charge_point_id,
                active=active,
                limit=limit,
                offset=offset,
            )
        )
        ids = [row.id for row in rows if row.id is not None]
        prices = await ctx.read(lambda session: tariffs.pricing_of(session, ids))
        items = [transaction_out(row, prices.get(row.id or 0)) for row in rows]
        return Page[TransactionOut](items=items, total=total)

    @router.get(
        "/transactions/{transaction_id}", dependencies=[require(Scope.READ)], tags=["transactions"]
    )
    async def get_transaction(transaction_id: TransactionIdPath) -> TransactionOut:
        row = await ctx.read(partial(transactions.get_transaction, transaction_id=transaction_id))
        if row is None:
            raise not_found("transaction")
        pricing = await ctx.read(lambda session: tariffs.get_pricing(session, transaction_id))
        return transaction_out(row, pricing)

    @router.get(
        "/transactions/{transaction_id}/meter-values",
        dependencies=[require(Scope.READ)],
        tags=["transactions"],
    )
    async def list_meter_values(
        transaction_id: TransactionIdPath, limit: Limit = 1000, offset: Offset = 0
    ) -> Page[MeterValueOut]:
        """The transaction's sampled values in time order."""
        rows, total = await ctx.read(
            partial(
                transactions.list_meter_values,
                transaction_id=transaction_id,
                limit=limit,
                offset=offset,
            )
        )
        return Page[MeterValueOut](items=[meter_value_out(row) for row in rows], total=total)


def _metrics_route(app: FastAPI, ctx: ApiContext) -> None:
    @app.get(
        "/metrics",
        dependencies=[require_metrics()],
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        """The Prometheus text format; `read`, or no credential from a loopback address."""
        try:
            count, oldest = await ctx.read(outbox.backlog)
        except StoreError:
            pass  # the gauges keep their last values; /api/v1/health says the database is away
        else:
            age = 0.0 if oldest is None else (ctx.clock() - oldest).total_seconds()
            ctx.metrics.outbox_backlog.set(count)
            ctx.metrics.outbox_oldest_age_seconds.set(age)
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


def _health_route(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/health",
        dependencies=[require(Scope.READ)],
        tags=["operations"],
        summary="Liveness and database reachability",
    )
    async def health() -> Health:
        """Database reachability, live chargers, and the event backlog waiting for the broker."""
        try:
            count, oldest = await ctx.read(outbox.backlog)
        except StoreError:
            return Health(
                status="degraded",
                database="unreachable",
                connected_chargers=len(ctx.chargers),
                outbox_backlog=None,
                outbox_oldest_age_seconds=None,
            )
        age = None if oldest is None else (ctx.clock() - oldest).total_seconds()
        return Health(
            status="ok",
            database="ok",
            connected_chargers=len(ctx.chargers),
            outbox_backlog=count,
            outbox_oldest_age_seconds=age,
        )
