"""The FastAPI application: charge points, id tags and transactions under /api/v1."""

import secrets
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Annotated, Any, Protocol

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.schemas import (
    ChargePointIn,
    ChargePointOut,
    ConnectorOut,
    Health,
    IdTagIn,
    IdTagOut,
    MeterValueOut,
    Page,
    TransactionOut,
    TransactionStatus,
)
from csms.core.ocpi import ocpi_evse_status
from csms.core.passwords import hash_password
from csms.core.transactions import energy_wh
from csms.errors import StoreError
from csms.store import repo
from csms.store.db import Database
from csms.store.tables import ChargePoint, Connector, IdTag, Transaction

Clock = Callable[[], Any]


class LiveChargers(Protocol):
    """The connection registry, as far as the API needs it."""

    def __contains__(self, charge_point_id: object) -> bool: ...

    def __len__(self) -> int: ...


class ApiContext:
    def __init__(self, *, database: Database, chargers: LiveChargers, clock: Clock) -> None:
        self.database = database
        self.chargers = chargers
        self.clock = clock

    async def read(self, query: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with self.database.sessions() as session:
            return await query(session)

    async def write(self, job: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        try:
            return await self.database.writer.submit(job)
        except StoreError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]
IdentityPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=48,
        pattern=r"^[^/\s\x00-\x1f\x7f]+$",
        description="the charge point identity, as in its OCPP URL",
    ),
]
IdTagPath = Annotated[str, Path(min_length=1, max_length=20, description="OCPP IdToken")]


def create_api(*, database: Database, chargers: LiveChargers, clock: Clock, token: str) -> FastAPI:
    """Build the API. An empty token means no authentication (loopback only, see config)."""
    ctx = ApiContext(database=database, chargers=chargers, clock=clock)
    app = FastAPI(
        title="csms",
        summary="OCPP 1.6J central system: charge points, id tags and transactions",
        version="1",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(_bearer(token))])
    _charge_point_routes(router, ctx)
    _id_tag_routes(router, ctx)
    _transaction_routes(router, ctx)
    _health_route(router, ctx)
    app.include_router(router)
    return app


def _bearer(token: str) -> Callable[..., Awaitable[None]]:
    scheme = HTTPBearer(auto_error=False)

    async def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        if not token:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    reasons = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        reasons.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse(status_code=422, content={"detail": "; ".join(reasons)})


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


# -- charge points -------------------------------------------------------------------------


def _charge_point_out(
    row: ChargePoint, connectors: list[Connector], *, connected: bool
) -> ChargePointOut:
    if connected:
        network = "available"
    elif row.connected_at is None:
        network = "never_connected"
    else:
        network = "temporarily_unavailable"
    return ChargePointOut(
        id=row.id,
        name=row.name,
        connected=connected,
        last_seen=row.last_seen,
        boot_status=row.boot_status,
        vendor=row.vendor,
        model=row.model,
        serial_number=row.serial_number or row.charge_box_serial_number,
        firmware_version=row.firmware_version,
        network_status=network,
        security_profile=row.security_profile,
        location_id=row.location_id,
        connectors=[
            ConnectorOut(
                connector_id=c.connector_id,
                status=c.status,
                error_code=c.error_code,
                info=c.info,
                vendor_error_code=c.vendor_error_code,
                ocpi_status=ocpi_evse_status(c.status, online=connected).value,
                updated_at=c.updated_at,
            )
            for c in connectors
            if c.charge_point_id == row.id
        ],
    )


def _charge_point_routes(router: APIRouter, ctx: ApiContext) -> None:
    async def load(session: AsyncSession, charge_point_id: str) -> ChargePointOut | None:
        row = await repo.get_charge_point(session, charge_point_id)
        if row is None:
            return None
        connectors = await repo.list_connectors(session, [row.id])
        return _charge_point_out(row, connectors, connected=row.id in ctx.chargers)

    @router.get("/charge-points", tags=["charge points"], summary="List charge points")
    async def list_charge_points(limit: Limit = 50, offset: Offset = 0) -> Page[ChargePointOut]:
        async def query(session: AsyncSession) -> Page[ChargePointOut]:
            rows, total = await repo.list_charge_points(session, limit=limit, offset=offset)
            connectors = await repo.list_connectors(session, [row.id for row in rows])
            items = [
                _charge_point_out(row, connectors, connected=row.id in ctx.chargers) for row in rows
            ]
            return Page[ChargePointOut](items=items, total=total)

        result: Page[ChargePointOut] = await ctx.read(query)
        return result

    @router.get("/charge-points/{charge_point_id}", tags=["charge points"])
    async def get_charge_point(charge_point_id: str) -> ChargePointOut:
        found = await ctx.read(partial(load, charge_point_id=charge_point_id))
        if found is None:
            raise _not_found("charge point")
        assert isinstance(found, ChargePointOut)
        return found

    @router.put("/charge-points/{charge_point_id}", tags=["charge points"])
    async def put_charge_point(
        charge_point_id: IdentityPath, body: ChargePointIn, response: Response
    ) -> ChargePointOut:
        """Register or update a charge point; `password` is stored hashed and never returned."""
        values = body.model_dump(exclude_unset=True, exclude={"password"})
        if body.password is not None:
            values["password_hash"] = hash_password(
                body.password.encode(), salt=secrets.token_bytes(16)
            )
        created = await ctx.write(
            partial(
                repo.upsert_charge_point,
                charge_point_id=charge_point_id,
                values=values,
                now=ctx.clock(),
            )
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        found = await ctx.read(partial(load, charge_point_id=charge_point_id))
        assert isinstance(found, ChargePointOut)
        return found

    @router.delete("/charge-points/{charge_point_id}", tags=["charge points"], status_code=204)
    async def delete_charge_point(charge_point_id: str) -> None:
        if not await ctx.write(partial(repo.delete_charge_point, charge_point_id=charge_point_id)):
            raise _not_found("charge point")


# -- id tags -------------------------------------------------------------------------------


def _id_tag_out(row: IdTag) -> IdTagOut:
    return IdTagOut(
        id_tag=row.id_tag,
        status=row.status,
        expiry_date=row.expiry_date,
        parent_id_tag=row.parent_id_tag,
    )


def _id_tag_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/id-tags", tags=["id tags"], summary="List id tags")
    async def list_id_tags(limit: Limit = 50, offset: Offset = 0) -> Page[IdTagOut]:
        rows, total = await ctx.read(partial(repo.list_id_tags, limit=limit, offset=offset))
        return Page[IdTagOut](items=[_id_tag_out(row) for row in rows], total=total)

    @router.get("/id-tags/{id_tag}", tags=["id tags"])
    async def get_id_tag(id_tag: IdTagPath) -> IdTagOut:
        row = await ctx.read(partial(repo.get_id_tag, id_tag=id_tag))
        if row is None:
            raise _not_found("id tag")
        return _id_tag_out(row)

    @router.put("/id-tags/{id_tag}", tags=["id tags"])
    async def put_id_tag(id_tag: IdTagPath, body: IdTagIn, response: Response) -> IdTagOut:
        """Create or replace an id tag; Authorize and StartTransaction answer from it."""
        values: Mapping[str, Any] = {
            "status": body.status.value,
            "expiry_date": body.expiry_date,
            "parent_id_tag": body.parent_id_tag,
        }
        created = await ctx.write(
            partial(repo.upsert_id_tag, id_tag=id_tag, values=dict(values), now=ctx.clock())
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        row = await ctx.read(partial(repo.get_id_tag, id_tag=id_tag))
        return _id_tag_out(row)

    @router.delete("/id-tags/{id_tag}", tags=["id tags"], status_code=204)
    async def delete_id_tag(id_tag: IdTagPath) -> None:
        if not await ctx.write(partial(repo.delete_id_tag, id_tag=id_tag)):
            raise _not_found("id tag")


# -- transactions --------------------------------------------------------------------------


def _transaction_out(row: Transaction) -> TransactionOut:
    assert row.id is not None
    return TransactionOut(
        transaction_id=row.id,
        charge_point_id=row.charge_point_id,
        connector_id=row.connector_id,
        id_tag=row.id_tag if row.id_tag is not None else row.stop_id_tag,
        meter_start=row.meter_start,
        meter_stop=row.meter_stop,
        start_timestamp=row.start_timestamp,
        stop_timestamp=row.stop_timestamp,
        stop_reason=row.stop_reason,
        energy_wh=energy_wh(
            meter_start=row.meter_start,
            meter_stop=row.meter_stop,
            last_register_wh=row.last_register_wh,
        ),
        status=TransactionStatus.ACTIVE
        if row.stop_timestamp is None
        else TransactionStatus.COMPLETED,
        flags=row.flags,
    )


def _transaction_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/transactions", tags=["transactions"], summary="List transactions")
    async def list_transactions(
        charge_point_id: Annotated[str | None, Query(alias="chargePointId")] = None,
        active: bool | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[TransactionOut]:
        rows, total = await ctx.read(
            partial(
                repo.list_transactions,
                charge_point_id=charge_point_id,
                active=active,
                limit=limit,
                offset=offset,
            )
        )
        return Page[TransactionOut](items=[_transaction_out(row) for row in rows], total=total)

    @router.get("/transactions/{transaction_id}", tags=["transactions"])
    async def get_transaction(transaction_id: int) -> TransactionOut:
        row = await ctx.read(partial(repo.get_transaction, transaction_id=transaction_id))
        if row is None:
            raise _not_found("transaction")
        return _transaction_out(row)

    @router.get("/transactions/{transaction_id}/meter-values", tags=["transactions"])
    async def list_meter_values(transaction_id: int) -> Page[MeterValueOut]:
        rows = await ctx.read(partial(repo.list_meter_values, transaction_id=transaction_id))
        items = [
            MeterValueOut(
                timestamp=row.timestamp,
                value=row.value,
                measurand=row.measurand,
                unit=row.unit,
                context=row.context,
                location=row.location,
                phase=row.phase or None,
                format=row.format,
            )
            for row in rows
        ]
        return Page[MeterValueOut](items=items, total=len(items))


def _health_route(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/health", tags=["operations"], summary="Liveness and database reachability")
    async def health() -> Health:
        try:
            await ctx.read(lambda session: session.execute(text("SELECT 1")))
        except Exception:
            return Health(
                status="degraded", database="unreachable", connected_chargers=len(ctx.chargers)
            )
        return Health(status="ok", database="ok", connected_chargers=len(ctx.chargers))
