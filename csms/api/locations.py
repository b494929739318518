"""Location routes: OCPI 2.2.1 Locations, as CPO onboarding tools describe them."""

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import ValidationError

from csms.api.auth import require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import Page
from csms.core.access import Scope
from csms.core.session import Party
from csms.events import build

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
    @router.put("/locations/{location_id}", dependencies=[require(Scope.ADMIN)], tags=["locations"])
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
        created, location = await ctx.locations.put(
            location_id=location_id, data=data, now=ctx.clock()
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return location

    @router.get("/locations/{location_id}", dependencies=[require(Scope.READ)], tags=["locations"])
    async def get_location(location_id: LocationPath) -> dict[str, Any]:
        """The OCPI Location with live EVSE statuses."""
        found = await ctx.locations.get(location_id)
        if found is None:
            raise not_found("location")
        return found

    @router.get("/locations", dependencies=[require(Scope.READ)], tags=["locations"])
    async def list_locations(limit: Limit = 50, offset: Offset = 0) -> Page[dict[str, Any]]:
        items, total = await ctx.locations.list(limit=limit, offset=offset)
        return Page[dict[str, Any]](items=items, total=total)

    @router.delete(
        "/locations/{location_id}",
        dependencies=[require(Scope.ADMIN)],
        tags=["locations"],
        status_code=204,
    )
    async def delete_location(location_id: LocationPath) -> None:
        """Remove a location; its chargers are unlinked."""
        if not await ctx.locations.delete(location_id):
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
