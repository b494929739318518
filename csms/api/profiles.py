"""Charging profile routes: create and clear through the charger, and the composite schedule
csms computes from what the chargers accepted (docs/load-balancing.md, "Profiles").

Listing is `GET /charge-points/{id}/charging-profiles` (registry routes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import Field

from csms.api.auth import require
from csms.api.commands import COMMAND_RESPONSES, RequestedBy, run_command
from csms.api.context import ApiContext, IdentityPath, not_found
from csms.api.schemas import CamelModel, CommandOut
from csms.core.access import Scope
from csms.core.clock import format_utc
from csms.core.schedule import (
    Electrical,
    Profile,
    ProfileError,
    TxContext,
    Unit,
    composite_schedule,
    profile_from_ocpp,
)
from csms.flows.commands import CommandResult
from csms.store import chargers, circuits
from csms.store.tables import ChargingProfile

_EXAMPLE = {
    "connectorId": 0,
    "csChargingProfiles": {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}],
        },
    },
}


class SchedulePeriodOut(CamelModel):
    start_period: int
    limit: float | None = Field(description="null: no profile limits it")


class ScheduleOut(CamelModel):
    duration: int
    start_schedule: str
    charging_rate_unit: str
    charging_schedule_period: list[SchedulePeriodOut]


class CompositeOut(CamelModel):
    charge_point_id: str
    connector_id: int
    schedule_start: str
    charging_schedule: ScheduleOut


def _command_out(result: CommandResult) -> CommandOut:
    return CommandOut(
        action=result.action, charge_point_id=result.charge_point_id, response=result.response
    )


def add_profile_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.post(
        "/charge-points/{charge_point_id}/charging-profiles",
        dependencies=[require(Scope.COMMANDS)],
        tags=["smart charging"],
        responses={
            **COMMAND_RESPONSES,
            422: {
                "description": "off-schema, or beyond a limit the charger reported "
                "(ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods, "
                "ChargingScheduleAllowedChargingRateUnit), or a clash with the balancer"
            },
        },
    )
    async def create_profile(
        charge_point_id: IdentityPath,
        payload: Annotated[
            dict[str, Any],
            Body(
                description="the SetChargingProfile.req payload",
                openapi_examples={"cap": {"summary": "32 A per phase", "value": _EXAMPLE}},
            ),
        ],
        requested_by: RequestedBy = None,
    ) -> CommandOut:
        """Send a profile; once the charger accepts it, it is kept and listed."""
        result = await run_command(
            ctx, charge_point_id, "SetChargingProfile", payload, requested_by or "api"
        )
        return _command_out(result)

    @router.delete(
        "/charge-points/{charge_point_id}/charging-profiles",
        dependencies=[require(Scope.COMMANDS)],
        tags=["smart charging"],
        responses=COMMAND_RESPONSES,
    )
    async def clear_profiles(
        charge_point_id: IdentityPath,
        charging_profile_id: Annotated[int | None, Query(alias="id")] = None,
        connector_id: Annotated[int | None, Query(alias="connectorId", ge=0)] = None,
        purpose: Annotated[
            Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"] | None,
            Query(alias="chargingProfilePurpose"),
        ] = None,
        stack_level: Annotated[int | None, Query(alias="stackLevel", ge=0)] = None,
        requested_by: RequestedBy = None,
    ) -> CommandOut:
        """ClearChargingProfile with these filters (none: every profile)."""
        payload: dict[str, Any] = {}
        for key, value in (
            ("id", charging_profile_id),
            ("connectorId", connector_id),
            ("chargingProfilePurpose", purpose),
            ("stackLevel", stack_level),
        ):
            if value is not None:
                payload[key] = value
        result = await run_command(
            ctx, charge_point_id, "ClearChargingProfile", payload, requested_by or "api"
        )
        return _command_out(result)

    @router.get(
        "/charge-points/{charge_point_id}/composite-schedule",
        dependencies=[require(Scope.READ)],
        tags=["smart charging"],
    )
    async def get_composite(
        charge_point_id: IdentityPath,
        connector_id: Annotated[int, Query(alias="connectorId", ge=0)],
        duration: Annotated[int, Query(ge=1, le=7 * 86400)] = 86400,
        unit: Annotated[Literal["A", "W"], Query(alias="chargingRateUnit")] = "A",
    ) -> CompositeOut:
        """The composite schedule csms computes from the profiles the charger accepted,
        without asking it (OCPP 1.6 §3.13.3)."""
        now = ctx.clock()
        row = await ctx.read(lambda s: chargers.get_charge_point(s, charge_point_id))
        if row is None:
            raise not_found(f"charge point {charge_point_id}")
        stored = await ctx.read(lambda s: circuits.profiles_of(s, [charge_point_id]))
        profiles = []
        for item in stored.get(charge_point_id, []):
            try:
                profiles.append(_typed(item))
            except (ProfileError, KeyError, ValueError):
                continue  # accepted by the charger, unusable here: it cannot be computed
        tx = await _tx(ctx, charge_point_id, connector_id)
        phases = await _phases(ctx, charge_point_id, connector_id)
        result = composite_schedule(
            profiles,
            connector_id=connector_id,
            start=now,
            duration=duration,
            unit=Unit(unit),
            tx=tx,
            electrical=Electrical(230.0, phases),
        )
        stamp = format_utc(now)
        return CompositeOut(
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            schedule_start=stamp,
            charging_schedule=ScheduleOut(
                duration=duration,
                start_schedule=stamp,
                charging_rate_unit=unit,
                charging_schedule_period=[
                    SchedulePeriodOut(start_period=offset, limit=limit)
                    for offset, limit in result.periods
                ],
            ),
        )


def _typed(item: ChargingProfile) -> Profile:
    return profile_from_ocpp(item.connector_id, item.profile, installed_at=item.updated_at)


async def _tx(ctx: ApiContext, charge_point_id: str, connector_id: int) -> TxContext:
    if connector_id == 0:
        return TxContext()
    active = await ctx.read(lambda s: circuits.active_sessions(s, [charge_point_id]))
    for session in active:
        if session.connector_id == connector_id:
            started: datetime | None = session.started_at
            return TxContext(transaction_id=session.transaction_id, started_at=started)
    return TxContext()


async def _phases(ctx: ApiContext, charge_point_id: str, connector_id: int) -> int:
    members = await ctx.read(lambda s: circuits.list_members(s))
    for member in members:
        if member.charge_point_id == charge_point_id and member.connector_id in (0, connector_id):
            return member.phases
    return 3
