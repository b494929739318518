"""Registry routes: reservations, charging profiles, configuration, vendor error codes, users."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.auth import require
from csms.api.context import ApiContext, IdentityPath, Limit, Offset, not_found
from csms.api.schemas import (
    ChargingProfileOut,
    ConfigurationKeyOut,
    Page,
    ReservationOut,
    UserIn,
    UserOut,
    VendorErrorCodeIn,
    VendorErrorCodeOut,
)
from csms.api.views import ErrorTexts
from csms.core.access import Scope
from csms.core.charging import ReservationStatus
from csms.store import chargers, registry
from csms.store.commands import list_charging_profiles, list_configuration, list_reservations
from csms.store.tables import Connector, Reservation, User

VendorPath = Annotated[str, Path(min_length=1, max_length=255, description="chargePointVendor")]
CodePath = Annotated[str, Path(min_length=1, max_length=50, description="vendorErrorCode")]
UserPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._-]+$")]


async def error_texts(session: AsyncSession, connectors: list[Connector]) -> ErrorTexts:
    """Descriptions for the vendor error codes the connectors report."""
    pairs = [
        (connector.vendor_id or "", connector.vendor_error_code)
        for connector in connectors
        if connector.vendor_error_code
    ]
    # Most chargers leave vendorId out: their vendor is the one they booted with.
    vendors = await _vendors(
        session, {c.charge_point_id for c in connectors if c.vendor_error_code}
    )
    pairs += [
        (vendors.get(c.charge_point_id, ""), c.vendor_error_code)
        for c in connectors
        if c.vendor_error_code
    ]
    return await registry.vendor_error_texts(session, [(v, code) for v, code in pairs if code])


async def _vendors(session: AsyncSession, charge_point_ids: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for charge_point_id in charge_point_ids:
        row = await chargers.get_charge_point(session, charge_point_id)
        if row is not None and row.vendor:
            found[charge_point_id] = row.vendor
    return found


def _reservation_out(row: Reservation) -> ReservationOut:
    assert row.expiry_date is not None
    return ReservationOut(
        reservation_id=row.reservation_id,
        charge_point_id=row.charge_point_id,
        connector_id=row.connector_id,
        id_tag=row.id_tag,
        parent_id_tag=row.parent_id_tag,
        expiry_date=row.expiry_date,
        status=row.status,
        transaction_id=row.transaction_id,
    )


def _user_out(row: User, tags: dict[str, list[str]]) -> UserOut:
    return UserOut(user_id=row.id, name=row.name, email=row.email, id_tags=tags.get(row.id, []))


def add_registry_routes(router: APIRouter, ctx: ApiContext) -> None:
    _add_charger_views(router, ctx)
    _add_vendor_error_codes(router, ctx)
    _add_users(router, ctx)


def _add_charger_views(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/reservations", dependencies=[require(Scope.READ)], tags=["reservations"])
    async def get_reservations(
        charge_point_id: Annotated[str | None, Query(alias="chargePointId")] = None,
        reservation_status: Annotated[ReservationStatus | None, Query(alias="status")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[ReservationOut]:
        """Reservations kept from ReserveNow/CancelReservation: active, expired, canceled, done."""
        rows, total = await ctx.read(
            lambda session: list_reservations(
                session,
                charge_point_id=charge_point_id,
                status=reservation_status.value if reservation_status else None,
                limit=limit,
                offset=offset,
            )
        )
        return Page[ReservationOut](items=[_reservation_out(row) for row in rows], total=total)

    @router.get(
        "/charge-points/{charge_point_id}/charging-profiles",
        dependencies=[require(Scope.READ)],
        tags=["charge points"],
    )
    async def get_charging_profiles(charge_point_id: IdentityPath) -> Page[ChargingProfileOut]:
        """Charging profiles the charger accepted and has not had cleared."""
        rows = await ctx.read(
            lambda session: list_charging_profiles(session, charge_point_id=charge_point_id)
        )
        items = [ChargingProfileOut.model_validate(row, from_attributes=True) for row in rows]
        return Page[ChargingProfileOut](items=items, total=len(items))

    @router.get(
        "/charge-points/{charge_point_id}/configuration",
        dependencies=[require(Scope.READ)],
        tags=["charge points"],
    )
    async def get_configuration(charge_point_id: IdentityPath) -> Page[ConfigurationKeyOut]:
        """The last known configuration (from GetConfiguration and accepted changes)."""
        rows = await ctx.read(
            lambda session: list_configuration(session, charge_point_id=charge_point_id)
        )
        items = [ConfigurationKeyOut.model_validate(row, from_attributes=True) for row in rows]
        return Page[ConfigurationKeyOut](items=items, total=len(items))


def _add_vendor_error_codes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/vendor-error-codes", dependencies=[require(Scope.READ)], tags=["vendor error codes"]
    )
    async def list_codes(limit: Limit = 50, offset: Offset = 0) -> Page[VendorErrorCodeOut]:
        rows, total = await ctx.read(
            lambda session: registry.list_vendor_error_codes(session, limit=limit, offset=offset)
        )
        items = [VendorErrorCodeOut.model_validate(row, from_attributes=True) for row in rows]
        return Page[VendorErrorCodeOut](items=items, total=total)

    @router.get(
        "/vendor-error-codes/{vendor}/{code}",
        dependencies=[require(Scope.READ)],
        tags=["vendor error codes"],
    )
    async def get_code(vendor: VendorPath, code: CodePath) -> VendorErrorCodeOut:
        row = await ctx.read(
            lambda session: registry.get_vendor_error_code(session, vendor=vendor, code=code)
        )
        if row is None:
            raise not_found("vendor error code")
        return VendorErrorCodeOut.model_validate(row, from_attributes=True)

    @router.put(
        "/vendor-error-codes/{vendor}/{code}",
        dependencies=[require(Scope.ADMIN)],
        tags=["vendor error codes"],
    )
    async def put_code(
        vendor: VendorPath, code: CodePath, body: VendorErrorCodeIn, response: Response
    ) -> VendorErrorCodeOut:
        """Explain a vendor's error code; charge points and events show the text."""
        created = await ctx.write(
            lambda session: registry.upsert_vendor_error_code(
                session, vendor=vendor, code=code, description=body.description
            )
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return VendorErrorCodeOut(
            vendor=vendor, vendor_error_code=code, description=body.description
        )

    @router.delete(
        "/vendor-error-codes/{vendor}/{code}",
        dependencies=[require(Scope.ADMIN)],
        tags=["vendor error codes"],
        status_code=204,
    )
    async def delete_code(vendor: VendorPath, code: CodePath) -> None:
        if not await ctx.write(
            lambda session: registry.delete_vendor_error_code(session, vendor=vendor, code=code)
        ):
            raise not_found("vendor error code")


def _add_users(router: APIRouter, ctx: ApiContext) -> None:
    async def load(session: AsyncSession, user_id: str) -> UserOut | None:
        row = await registry.get_user(session, user_id)
        if row is None:
            return None
        return _user_out(row, await registry.tags_of_users(session, [row.id]))

    @router.get("/users", dependencies=[require(Scope.READ)], tags=["users"])
    async def list_users(limit: Limit = 50, offset: Offset = 0) -> Page[UserOut]:
        async def query(session: AsyncSession) -> Page[UserOut]:
            rows, total = await registry.list_users(session, limit=limit, offset=offset)
            tags = await registry.tags_of_users(session, [row.id for row in rows])
            return Page[UserOut](items=[_user_out(row, tags) for row in rows], total=total)

        page: Page[UserOut] = await ctx.read(query)
        return page

    @router.post("/users", dependencies=[require(Scope.ADMIN)], tags=["users"], status_code=201)
    async def create_user(body: UserIn) -> UserOut:
        """Create a user with a generated id; link tags with PUT /id-tags/{idTag} userId."""
        user_id = str(uuid.uuid4())
        await ctx.write(
            lambda session: registry.upsert_user(
                session, user_id=user_id, values=body.model_dump(), now=ctx.clock()
            )
        )
        return UserOut(user_id=user_id, name=body.name, email=body.email, id_tags=[])

    @router.get("/users/{user_id}", dependencies=[require(Scope.READ)], tags=["users"])
    async def get_user(user_id: UserPath) -> UserOut:
        found = await ctx.read(lambda session: load(session, user_id))
        if found is None:
            raise not_found("user")
        assert isinstance(found, UserOut)
        return found

    @router.put("/users/{user_id}", dependencies=[require(Scope.ADMIN)], tags=["users"])
    async def put_user(user_id: UserPath, body: UserIn, response: Response) -> UserOut:
        created = await ctx.write(
            lambda session: registry.upsert_user(
                session, user_id=user_id, values=body.model_dump(), now=ctx.clock()
            )
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        found = await ctx.read(lambda session: load(session, user_id))
        assert isinstance(found, UserOut)
        return found

    @router.delete(
        "/users/{user_id}", dependencies=[require(Scope.ADMIN)], tags=["users"], status_code=204
    )
    async def delete_user(user_id: UserPath) -> None:
        if not await ctx.write(lambda session: registry.delete_user(session, user_id=user_id)):
            raise not_found("user")
