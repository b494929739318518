"""Location routes: OCPI 2.2.1 Locations, as CPO onboarding tools describe them."""

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import Page
from csms.events import build
from csms.events.build import Party
from csms.store import locations, outbox
from csms.store.tables import Location

LocationPath = Annotated[
    str, Path(min_length=1, max_length=36, pattern=r"^[\x21-\x7e]+$", description="OCPI id")
]

_EXAMPLE = {
    "publish": True,
    "name": "Gent Zuid",
    "address": "F.Rooseveltlaan 3A",
    "city": "Gent",
    "postal_code": "9000",
    "country": "BEL",
    "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    "parking_type": "ON_STREET",
    "time_zone": "Europe/Brussels",
    "opening_times": {"twentyfourseven": True},
    "facilities": ["BUS_STOP"],
}
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # any time will do to validate the data
# Derived by csms: the EVSEs from the linked chargers, the id from the path, the time.
_DERIVED = ("evses", "last_updated")


def add_location_routes(router: APIRouter, ctx: ApiContext, party: Party) -> None:
    async def full(session: AsyncSession, row: Location) -> dict[str, Any]:
        assert row.last_updated is not None
        chargers = await locations.chargers_at(session, row.id, online=ctx.chargers)
        return build.ocpi_location(
            location_id=row.id,
            data=row.data,
            last_updated=row.last_updated,
            party=party,
            chargers=chargers,
        )

    @router.put("/locations/{location_id}", tags=["locations"])
    async def put_location(
        location_id: LocationPath,
        body: Annotated[
            dict[str, Any],
            Body(
                description="an OCPI 2.2.1 Location, without id, evses and last_updated",
                openapi_examples={"location": {"summary": "A street location", "value": _EXAMPLE}},
            ),
        ],
        response: Response,
    ) -> dict[str, Any]:
        """Create or replace a location; its EVSEs are the connectors of its chargers."""
        data = _checked(location_id, body, party)
        now = ctx.clock()

        async def job(session: AsyncSession) -> tuple[bool, dict[str, Any]]:
            created = await locations.upsert_location(
                session, location_id=location_id, data=data, now=now
            )
            row = await locations.get_location(session, location_id)
            assert row is not None
            location = await full(session, row)
            await outbox.add_events(session, [build.location_updated(location, at=now)], now=now)
            return created, location

        outcome: tuple[bool, dict[str, Any]] = await ctx.write(job)
        created, location = outcome
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return location

    @router.get("/locations/{location_id}", tags=["locations"])
    async def get_location(location_id: LocationPath) -> dict[str, Any]:
        """The OCPI Location with live EVSE statuses."""

        async def query(session: AsyncSession) -> dict[str, Any] | None:
            row = await locations.get_location(session, location_id)
            return None if row is None else await full(session, row)

        found: dict[str, Any] | None = await ctx.read(query)
        if found is None:
            raise not_found("location")
        return found

    @router.get("/locations", tags=["locations"])
    async def list_locations(limit: Limit = 50, offset: Offset = 0) -> Page[dict[str, Any]]:
        async def query(session: AsyncSession) -> Page[dict[str, Any]]:
            rows, total = await locations.list_locations(session, limit=limit, offset=offset)
            return Page[dict[str, Any]](items=[await full(session, r) for r in rows], total=total)

        page: Page[dict[str, Any]] = await ctx.read(query)
        return page

    @router.delete("/locations/{location_id}", tags=["locations"], status_code=204)
    async def delete_location(location_id: LocationPath) -> None:
        """Remove a location; its chargers are unlinked."""
        if not await ctx.write(
            lambda session: locations.delete_location(session, location_id=location_id)
        ):
            raise not_found("location")


def _checked(location_id: str, body: dict[str, Any], party: Party) -> dict[str, Any]:
    """The body as it will be stored, once it makes a valid OCPI Location (else 422)."""
    refused = [key for key in _DERIVED if key in body]
    if refused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"body.{refused[0]}: set by csms (EVSEs come from the chargers linked to the location)",
        )
    if body.get("id", location_id) != location_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body.id: differs from the path")
    data = {key: value for key, value in body.items() if key != "id"}
    try:
        build.ocpi_location(
            location_id=location_id,
            data=data,
            last_updated=_EPOCH,
            party=party,
            chargers=[],
        )
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _reasons(exc)) from exc
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"body: not storable as JSON ({exc})"
        ) from exc
    return data


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"body.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors()
    )
