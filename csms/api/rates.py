"""Electricity rate routes: purchase prices per site or circuit (docs/tariffs.md)."""

from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import ConfigDict, Field, model_validator

from csms.api.auth import require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page
from csms.api.wallet import Moment
from csms.core.access import Scope
from csms.core.ocpi import DayOfWeek
from csms.core.rates import RateScope
from csms.store import circuits, locations, rates
from csms.store.tables import ElectricityRate

RatePath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._-]+$")]
TimeOfDay = Annotated[str, Field(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
PricePerKwh = Annotated[Decimal, Field(ge=-100, le=100, max_digits=16)]
MAX_POINTS = 10_000


class TimeOfUseIn(CamelModel):
    day_of_week: list[DayOfWeek] | None = None
    start_time: TimeOfDay
    end_time: TimeOfDay
    price: PricePerKwh


class RateIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "locationId": "LOC-1",
                    "timeOfUse": [
                        {"startTime": "07:00", "endTime": "23:00", "price": 0.28},
                        {"startTime": "23:00", "endTime": "07:00", "price": 0.19},
                    ],
                }
            ]
        }
    )

    location_id: str | None = Field(default=None, min_length=1, max_length=36)
    circuit_id: str | None = Field(default=None, min_length=1, max_length=64)
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    time_of_use: list[TimeOfUseIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.location_id is None) == (self.circuit_id is None):
            raise ValueError("give exactly one of locationId and circuitId")
        return self


class RateOut(RateIn):
    rate_id: str
    currency: str


class PriceIn(CamelModel):
    start: Moment
    end: Moment
    price: PricePerKwh

    @model_validator(mode="after")
    def _end_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be later than start")
        return self


class PricesIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prices": [
                        {
                            "start": "2026-03-02T00:00:00Z",
                            "end": "2026-03-02T01:00:00Z",
                            "price": 0.0912,
                        }
                    ]
                }
            ]
        }
    )

    prices: list[PriceIn] = Field(min_length=1, max_length=MAX_POINTS)


class PriceOut(PriceIn):
    pass


def _rate_out(row: ElectricityRate) -> RateOut:
    return RateOut(
        rate_id=row.id,
        currency=row.currency,
        location_id=row.target if row.scope == RateScope.LOCATION else None,
        circuit_id=row.target if row.scope == RateScope.CIRCUIT else None,
        time_zone=row.time_zone,
        time_of_use=[TimeOfUseIn.model_validate(window) for window in row.time_of_use],
    )


def _invalid(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _check_zone(zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(f"body.timeZone: {zone} is not an IANA time zone") from exc


def add_rate_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.put(
        "/electricity-rates/{rate_id}",
        tags=["electricity rates"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_rate(rate_id: RatePath, body: RateIn, response: Response) -> RateOut:
        """Purchase prices of a site or circuit: a time-of-use table in its local time.

        A session is bought at its circuit's rate when one is set (the circuit its
        connector was on at the start, or one above it), else at its site's."""
        if body.time_zone is not None:
            _check_zone(body.time_zone)
        zone = body.time_zone
        if body.location_id is not None:
            location_id = body.location_id
            found = await ctx.read(lambda session: locations.get_location(session, location_id))
            if found is None:
                raise _invalid(f"body.locationId: no location {location_id}; create it first")
            zone = zone or found.data.get("time_zone")
        else:
            circuit_id = body.circuit_id
            assert circuit_id is not None
            if await ctx.read(lambda session: circuits.get_circuit(session, circuit_id)) is None:
                raise _invalid(f"body.circuitId: no circuit {circuit_id}; create it first")
        zone = zone or "UTC"
        _check_zone(zone)
        scope, target = (
            (RateScope.LOCATION, body.location_id)
            if body.location_id is not None
            else (RateScope.CIRCUIT, body.circuit_id)
        )
        assert target is not None
        row = ElectricityRate(
            id=rate_id,
            scope=scope.value,
            target=target,
            currency=ctx.party.currency,
            time_of_use=[w.model_dump(mode="json", by_alias=True) for w in body.time_of_use],
            time_zone=zone,
            updated_at=ctx.clock(),
        )
        created = await ctx.write(lambda session: rates.put_rate(session, row))
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return _rate_out(row)

    @router.get(
        "/electricity-rates/{rate_id}",
        tags=["electricity rates"],
        dependencies=[require(Scope.READ)],
    )
    async def get_rate(rate_id: RatePath) -> RateOut:
        row = await ctx.read(lambda session: rates.get_rate(session, rate_id))
        if row is None:
            raise not_found("electricity rate")
        return _rate_out(row)

    @router.get(
        "/electricity-rates", tags=["electricity rates"], dependencies=[require(Scope.READ)]
    )
    async def list_rates(limit: Limit = 50, offset: Offset = 0) -> Page[RateOut]:
        rows, total = await ctx.read(
            lambda session: rates.list_rates(session, limit=limit, offset=offset)
        )
        return Page[RateOut](items=[_rate_out(row) for row in rows], total=total)

    @router.delete(
        "/electricity-rates/{rate_id}",
        tags=["electricity rates"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_rate(rate_id: RatePath) -> None:
        if not await ctx.write(lambda session: rates.delete_rate(session, rate_id=rate_id)):
            raise not_found("electricity rate")

    @router.put(
        "/electricity-rates/{rate_id}/prices",
        tags=["electricity rates"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_prices(rate_id: RatePath, body: PricesIn) -> dict[str, int]:
        """Upload a series (e.g. day-ahead prices): it replaces the series in its span and
        wins over the time-of-use table where it covers a moment."""
        if await ctx.read(lambda session: rates.get_rate(session, rate_id)) is None:
            raise not_found("electricity rate")
        ordered = sorted(body.prices, key=lambda price: price.start)
        for index, (first, second) in enumerate(pairwise(ordered)):
            if second.start < first.end:
                raise _invalid(f"body.prices.{index + 1}: overlaps the one before it")
        points = [(p.start, p.end, p.price) for p in ordered]
        count = await ctx.write(
            lambda session: rates.put_prices(session, rate_id=rate_id, points=points)
        )
        return {"count": count}

    @router.get(
        "/electricity-rates/{rate_id}/prices",
        tags=["electricity rates"],
        dependencies=[require(Scope.READ)],
    )
    async def list_prices(
        rate_id: RatePath,
        start: Annotated[Moment, Query(alias="from")],
        end: Annotated[Moment, Query(alias="to")],
    ) -> Page[PriceOut]:
        """The uploaded intervals that overlap [from, to)."""
        rows = await ctx.read(
            lambda session: rates.list_prices(session, rate_id=rate_id, start=start, end=end)
        )
        items = [
            PriceOut(start=row.start, end=row.end, price=Decimal(row.price))
            for row in rows
            if row.start is not None and row.end is not None
        ]
        return Page[PriceOut](items=items, total=len(items))
