"""Tariff routes: OCPI 2.2.1 Tariffs (snake_case, as OCPI spells them), groups, assignments,
and the pricing of a CDR.

The bodies of /tariffs are the one deliberate exception to camelCase in this API
(docs/api.md): a Tariff is stored and shown exactly as it is published to roaming partners.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Path, Response, status
from pydantic import ConfigDict, Field, ValidationError

from csms.api.auth import require
from csms.api.context import ApiContext, IdentityPath, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page
from csms.core.access import Scope
from csms.core.session import Party
from csms.core.tariff_ocpi import (
    ocpi_charging_periods,
    ocpi_cost_fields,
    tariff_from_ocpi,
    usage_from_ocpi,
)
from csms.core.tariffs import TariffSource, price_session
from csms.core.zones import location_zone
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi import Cdr, ChargingPeriod, Price, Tariff
from csms.flows import tariff_catalog
from csms.store import locations, tariffs
from csms.store.tables import TariffAssignment, TariffGroup

TariffPath = Annotated[
    str, Path(min_length=1, max_length=36, pattern=r"^[\x21-\x7e]+$", description="OCPI id")
]
GroupPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._-]+$")]
LocationPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[\x21-\x7e]+$")]
ConnectorPath = Annotated[int, Path(ge=0, le=2**31 - 1, description="0: every connector")]

_EXAMPLE = {
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 20.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1},
            ]
        }
    ],
}
_CDR_EXAMPLE = {
    "country_code": "BE",
    "party_id": "BEC",
    "id": "12345",
    "start_date_time": "2026-03-02T15:30:00Z",
    "end_date_time": "2026-03-02T16:30:00Z",
    "cdr_token": {
        "country_code": "BE",
        "party_id": "BEC",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "DE8ACC12E46L89",
    },
    "auth_method": "WHITELIST",
    "cdr_location": {
        "id": "LOC1",
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "country": "BEL",
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
        "evse_uid": "3256",
        "evse_id": "BE*BEC*E041503003",
        "connector_id": "1",
        "connector_standard": "IEC_62196_T2",
        "connector_format": "SOCKET",
        "connector_power_type": "AC_1_PHASE",
    },
    "currency": "EUR",
    "charging_periods": [
        {
            "start_date_time": "2026-03-02T15:30:00Z",
            "dimensions": [{"type": "ENERGY", "volume": 11.0}, {"type": "TIME", "volume": 1.0}],
        }
    ],
    "total_energy": 11.0,
    "total_time": 1.0,
    "last_updated": "2026-03-02T16:30:05Z",
}
# Set by csms: the id comes from the path, the time of the change is ours.
_DERIVED = ("last_updated",)
_COST_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)


class TariffGroupIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "Fleet customers", "tariffId": "FLEET-1"}]}
    )

    name: str = Field(min_length=1, max_length=255)
    tariff_id: str = Field(min_length=1, max_length=36)


class TariffGroupOut(TariffGroupIn):
    group_id: str


class TariffAssignmentIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"tariffId": "AC-STANDARD"}]}
    )

    tariff_id: str = Field(min_length=1, max_length=36)


class TariffAssignmentOut(CamelModel):
    scope: TariffSource
    location_id: str | None = None
    charge_point_id: str | None = None
    connector_id: int | None = None
    tariff_id: str


def _group_out(row: TariffGroup) -> TariffGroupOut:
    return TariffGroupOut(group_id=row.id, name=row.name, tariff_id=row.tariff_id)


def _assignment_out(row: TariffAssignment) -> TariffAssignmentOut:
    scope = TariffSource(row.scope)
    if scope is TariffSource.LOCATION:
        return TariffAssignmentOut(scope=scope, location_id=row.target, tariff_id=row.tariff_id)
    if scope is TariffSource.EVSE:
        charge_point_id, _, connector = row.target.rpartition("*")
        return TariffAssignmentOut(
            scope=scope,
            charge_point_id=charge_point_id,
            connector_id=int(connector),
            tariff_id=row.tariff_id,
        )
    return TariffAssignmentOut(scope=scope, tariff_id=row.tariff_id)


def evse_target(charge_point_id: str, connector_id: int) -> str:
    """The assignment target of an EVSE (connector 0: every connector of the charger)."""
    return f"{charge_point_id}*{connector_id}"


def add_tariff_routes(router: APIRouter, ctx: ApiContext) -> None:
    _add_tariffs(router, ctx)
    _add_pricing(router, ctx)
    _add_groups(router, ctx)
    _add_assignments(router, ctx)


def _add_tariffs(router: APIRouter, ctx: ApiContext) -> None:
    @router.put("/tariffs/{tariff_id}", tags=["tariffs"], dependencies=[require(Scope.ADMIN)])
    async def put_tariff(
        tariff_id: TariffPath,
        body: Annotated[
            dict[str, Any],
            Body(
                description="an OCPI 2.2.1 Tariff in OCPI's snake_case; id and last_updated "
                "are set by csms, country_code, party_id and currency default to [ocpi]",
                openapi_examples={"start fee and energy": {"summary": "", "value": _EXAMPLE}},
            ),
        ],
        response: Response,
    ) -> dict[str, Any]:
        """Create or replace a tariff; sessions already started keep the version they began with."""
        now = ctx.clock()
        data = checked_tariff(tariff_id, body, ctx.party, now=now)
        created = await ctx.write(
            lambda session: tariff_catalog.put_tariff(
                session, tariff_id=tariff_id, data=data, now=now
            )
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return data

    @router.get("/tariffs/{tariff_id}", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def get_tariff(tariff_id: TariffPath) -> dict[str, Any]:
        row = await ctx.read(lambda session: tariffs.get_tariff(session, tariff_id))
        if row is None:
            raise not_found("tariff")
        return row.data

    @router.get("/tariffs", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def list_tariffs(limit: Limit = 50, offset: Offset = 0) -> Page[dict[str, Any]]:
        rows, total = await ctx.read(
            lambda session: tariffs.list_tariffs(session, limit=limit, offset=offset)
        )
        return Page[dict[str, Any]](items=[row.data for row in rows], total=total)

    @router.delete(
        "/tariffs/{tariff_id}",
        tags=["tariffs"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_tariff(tariff_id: TariffPath) -> None:
        """Remove a tariff and its assignments; sessions priced with it keep their version."""
        now = ctx.clock()
        if not await ctx.write(
            lambda session: tariff_catalog.delete_tariff(session, tariff_id=tariff_id, now=now)
        ):
            raise not_found("tariff")


def checked_tariff(
    tariff_id: str, body: dict[str, Any], party: Party, *, now: datetime
) -> dict[str, Any]:
    """The body as stored: a valid OCPI 2.2.1 Tariff with our ids and the time (else 422)."""
    refused = [key for key in _DERIVED if key in body]
    if refused:
        raise _invalid(f"body.{refused[0]}: set by csms")
    if body.get("id", tariff_id) != tariff_id:
        raise _invalid("body.id: differs from the path")
    for key, ours in (("country_code", party.country_code), ("party_id", party.party_id)):
        if body.get(key, ours) != ours:
            raise _invalid(f"body.{key}: csms publishes tariffs as {ours} ([ocpi] {key})")
    if body.get("currency", party.currency) != party.currency:
        raise _invalid(f"body.currency: sessions are billed in {party.currency} ([ocpi] currency)")
    full = {
        "country_code": party.country_code,
        "party_id": party.party_id,
        "currency": party.currency,
        **body,
        "id": tariff_id,
        "last_updated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return to_json_dict(_validated(Tariff, full))


def _validated(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate_json(orjson.dumps(data))
    except ValidationError as exc:
        raise _invalid(_reasons(exc)) from exc
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        raise _invalid(f"body: not storable as JSON ({exc})") from exc


def _invalid(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"body.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors()
    )


def _add_pricing(router: APIRouter, ctx: ApiContext) -> None:
    @router.post("/tariffs/{tariff_id}/price", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def price_cdr(
        tariff_id: TariffPath,
        body: Annotated[
            dict[str, Any],
            Body(
                description="an OCPI 2.2.1 CDR; its own cost fields are ignored",
                openapi_examples={"one hour": {"summary": "", "value": _CDR_EXAMPLE}},
            ),
        ],
    ) -> dict[str, Any]:
        """What csms would charge for this CDR under the tariff (docs/tariffs.md)."""
        row = await ctx.read(lambda session: tariffs.get_tariff(session, tariff_id))
        if row is None:
            raise not_found("tariff")
        cdr = {key: value for key, value in body.items() if key not in _COST_FIELDS}
        cdr["total_cost"] = {"excl_vat": 0}
        validated = _validated(Cdr, cdr)
        problem = _pricing_problem(validated)
        if problem is not None:
            raise _invalid(problem)
        location_id = validated.cdr_location.id
        stored = await ctx.read(lambda session: locations.get_location(session, location_id))
        zone = location_zone(
            None if stored is None else stored.data.get("time_zone"),
            validated.cdr_location.country,
        )
        plain = to_json_dict(validated)
        costs = price_session(
            tariff_from_ocpi(row.data),
            usage_from_ocpi(plain["charging_periods"]),
            end=validated.end_date_time,
            zone=zone,
        )
        answer: dict[str, Any] = {
            name: to_json_dict(Price.model_validate(price))
            for name, price in ocpi_cost_fields(costs).items()
        }
        answer["charging_periods"] = [
            to_json_dict(ChargingPeriod.model_validate(period))
            for period in ocpi_charging_periods(costs)
        ]
        return answer


# A CDR longer than this is not one session (and would make the engine walk years of days).
MAX_SESSION = timedelta(days=31)


def _pricing_problem(cdr: Cdr) -> str | None:
    start, end = cdr.start_date_time, cdr.end_date_time
    if not 2000 <= start.year <= 2200:
        return "body.start_date_time: a time between the years 2000 and 2200"
    if end < start or end - start > MAX_SESSION:
        return f"body.end_date_time: a session ends after its start, within {MAX_SESSION.days} days"
    for index, period in enumerate(cdr.charging_periods):
        if not start - MAX_SESSION <= period.start_date_time <= end:
            return (
                f"body.charging_periods.{index}.start_date_time: "
                "not within the session (reservations at most 31 days before it)"
            )
    return None


def _add_groups(router: APIRouter, ctx: ApiContext) -> None:
    @router.put("/tariff-groups/{group_id}", tags=["tariffs"], dependencies=[require(Scope.ADMIN)])
    async def put_group(
        group_id: GroupPath, body: TariffGroupIn, response: Response
    ) -> TariffGroupOut:
        """A tariff group: users (PUT /users/{id}/wallet) and subscription plans point to it."""
        await _tariff_exists(ctx, body.tariff_id)
        created = await ctx.write(
            lambda session: tariffs.put_group(
                session,
                group_id=group_id,
                name=body.name,
                tariff_id=body.tariff_id,
                now=ctx.clock(),
            )
        )
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return TariffGroupOut(group_id=group_id, name=body.name, tariff_id=body.tariff_id)

    @router.get("/tariff-groups/{group_id}", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def get_group(group_id: GroupPath) -> TariffGroupOut:
        row = await ctx.read(lambda session: tariffs.get_group(session, group_id))
        if row is None:
            raise not_found("tariff group")
        return _group_out(row)

    @router.get("/tariff-groups", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def list_groups(limit: Limit = 50, offset: Offset = 0) -> Page[TariffGroupOut]:
        rows, total = await ctx.read(
            lambda session: tariffs.list_groups(session, limit=limit, offset=offset)
        )
        return Page[TariffGroupOut](items=[_group_out(row) for row in rows], total=total)

    @router.delete(
        "/tariff-groups/{group_id}",
        tags=["tariffs"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_group(group_id: GroupPath) -> None:
        if not await ctx.write(lambda session: tariffs.delete_group(session, group_id=group_id)):
            raise not_found("tariff group")


async def _tariff_exists(ctx: ApiContext, tariff_id: str) -> None:
    if await ctx.read(lambda session: tariffs.get_tariff(session, tariff_id)) is None:
        raise _invalid(f"body.tariffId: unknown tariff {tariff_id}")


def _roaming_changed(ctx: ApiContext) -> None:
    """Connectors name their tariff to roaming partners (docs/ocpi.md, "Tariffs"): an
    assignment changes what partners should hold."""
    if ctx.partners is not None:
        ctx.partners.everyone_changed()


def _add_assignments(router: APIRouter, ctx: ApiContext) -> None:
    async def assign(scope: TariffSource, target: str, body: TariffAssignmentIn) -> bool:
        await _tariff_exists(ctx, body.tariff_id)
        created: bool = await ctx.write(
            lambda session: tariffs.put_assignment(
                session, scope=scope.value, target=target, tariff_id=body.tariff_id, now=ctx.clock()
            )
        )
        _roaming_changed(ctx)
        return created

    async def unassign(scope: TariffSource, target: str) -> None:
        if not await ctx.write(
            lambda session: tariffs.delete_assignment(session, scope=scope.value, target=target)
        ):
            raise not_found("tariff assignment")
        _roaming_changed(ctx)

    @router.get("/tariff-assignments", tags=["tariffs"], dependencies=[require(Scope.READ)])
    async def list_assignments() -> Page[TariffAssignmentOut]:
        """Which tariff EVSEs, locations and everything else get (docs/tariffs.md)."""
        rows = await ctx.read(tariffs.list_assignments)
        return Page[TariffAssignmentOut](
            items=[_assignment_out(row) for row in rows], total=len(rows)
        )

    @router.put(
        "/tariff-assignments/default", tags=["tariffs"], dependencies=[require(Scope.ADMIN)]
    )
    async def put_default(body: TariffAssignmentIn, response: Response) -> TariffAssignmentOut:
        """The tariff of sessions that nothing else gives one."""
        created = await assign(TariffSource.DEFAULT, "", body)
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return TariffAssignmentOut(scope=TariffSource.DEFAULT, tariff_id=body.tariff_id)

    @router.delete(
        "/tariff-assignments/default",
        tags=["tariffs"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_default() -> None:
        await unassign(TariffSource.DEFAULT, "")

    @router.put(
        "/tariff-assignments/locations/{location_id}",
        tags=["tariffs"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_location(
        location_id: LocationPath, body: TariffAssignmentIn, response: Response
    ) -> TariffAssignmentOut:
        created = await assign(TariffSource.LOCATION, location_id, body)
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return TariffAssignmentOut(
            scope=TariffSource.LOCATION, location_id=location_id, tariff_id=body.tariff_id
        )

    @router.delete(
        "/tariff-assignments/locations/{location_id}",
        tags=["tariffs"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_location(location_id: LocationPath) -> None:
        await unassign(TariffSource.LOCATION, location_id)

    @router.put(
        "/tariff-assignments/evses/{charge_point_id}/{connector_id}",
        tags=["tariffs"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_evse(
        charge_point_id: IdentityPath,
        connector_id: ConnectorPath,
        body: TariffAssignmentIn,
        response: Response,
    ) -> TariffAssignmentOut:
        """The tariff of one EVSE (connector), or of every connector of a charger (0)."""
        created = await assign(TariffSource.EVSE, evse_target(charge_point_id, connector_id), body)
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return TariffAssignmentOut(
            scope=TariffSource.EVSE,
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            tariff_id=body.tariff_id,
        )

    @router.delete(
        "/tariff-assignments/evses/{charge_point_id}/{connector_id}",
        tags=["tariffs"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_evse(charge_point_id: IdentityPath, connector_id: ConnectorPath) -> None:
        await unassign(TariffSource.EVSE, evse_target(charge_point_id, connector_id))
