"""Circuit routes: the tree of circuits, their members, the allocation and its history
(docs/load-balancing.md, docs/api.md "Circuits").

The bodies are defined here rather than in schemas.py: they are this resource's alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

from csms.api.auth import require
from csms.api.context import ApiContext, not_found
from csms.api.schemas import CamelModel, Page
from csms.core.access import Scope
from csms.core.circuits import Rotation
from csms.errors import CircuitError
from csms.flows.circuits import CircuitInput, MemberInput
from csms.store import circuits
from csms.store.tables import Circuit, CircuitAllocation, CircuitAllocationChange, CircuitMember

CircuitPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="the circuit's id, chosen by the operator",
    ),
]
Amps = Annotated[float, Field(ge=0, le=10_000)]
PhaseAmps = Annotated[list[Amps], Field(min_length=3, max_length=3)]


async def circuit_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CircuitError)
    return JSONResponse(status_code=exc.status, content={"detail": str(exc)})


class MemberIn(CamelModel):
    charge_point_id: str = Field(min_length=1, max_length=48)
    connector_id: int | None = Field(
        default=None, ge=1, description="one connector; absent: the whole charger on one feed"
    )
    phase_rotation: Rotation = Field(
        default=Rotation.RST, description="grid phases feeding the charger's L1, L2, L3"
    )
    phases: Literal[1, 3] = Field(default=3, description="phases the charger is wired for")
    priority: int = Field(default=0, ge=-100, le=100)
    min_current_a: float = Field(default=6.0, ge=0, le=1000)
    max_current_a: float = Field(default=32.0, gt=0, le=1000)


class CircuitIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Car park",
                    "phaseLimitsA": [32, 32, 32],
                    "members": [
                        {"chargePointId": "CP-1"},
                        {"chargePointId": "CP-2", "phaseRotation": "STR", "priority": 1},
                    ],
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=255)
    parent_id: str | None = Field(default=None, min_length=1, max_length=64)
    phase_limits_a: PhaseAmps
    base_load_a: PhaseAmps | None = None
    safety_margin_a: float = Field(default=0.5, ge=0, le=100)
    members: list[MemberIn] = Field(default_factory=list, max_length=10_000)


class MemberOut(CamelModel):
    charge_point_id: str
    connector_id: int | None
    phase_rotation: str
    phases: int
    priority: int
    min_current_a: float
    max_current_a: float


class CircuitOut(CamelModel):
    id: str
    name: str
    parent_id: str | None
    phase_limits_a: list[float]
    base_load_a: list[float] | None
    safety_margin_a: float
    members: list[MemberOut]
    created_at: datetime | None
    updated_at: datetime | None


class AllocationOut(CamelModel):
    charge_point_id: str
    connector_id: int
    circuit_id: str
    transaction_id: int | None
    limit_a: float
    phases: int | None = Field(
        description="grid phases the limit is counted on (fewer than the member's once meter "
        "values showed the car's); null for an allocation recorded before csms kept it"
    )
    reason: str
    status: str = Field(description="accepted, or unknown: sent and not confirmed")
    lease_until: datetime | None
    changed_at: datetime | None


class AllocationsOut(CamelModel):
    circuit_id: str
    connectors: list[AllocationOut]


class AllocationChangeOut(CamelModel):
    id: int
    circuit_id: str
    charge_point_id: str
    connector_id: int
    transaction_id: int | None
    limit_a: float
    previous_a: float | None
    phases: int | None
    reason: str
    at: datetime | None


def _member_out(row: CircuitMember) -> MemberOut:
    return MemberOut(
        charge_point_id=row.charge_point_id,
        connector_id=row.connector_id or None,
        phase_rotation=row.phase_rotation,
        phases=row.phases,
        priority=row.priority,
        min_current_a=row.min_current_a,
        max_current_a=row.max_current_a,
    )


def _circuit_out(row: Circuit, members: list[CircuitMember]) -> CircuitOut:
    return CircuitOut(
        id=row.id,
        name=row.name,
        parent_id=row.parent_id,
        phase_limits_a=row.phase_limits_a,
        base_load_a=row.base_load_a,
        safety_margin_a=row.safety_margin_a,
        members=[_member_out(m) for m in members if m.circuit_id == row.id],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _input(circuit_id: str, body: CircuitIn) -> CircuitInput:
    def three(values: list[float] | None) -> tuple[float, float, float] | None:
        return None if values is None else (values[0], values[1], values[2])

    limits = three(body.phase_limits_a)
    assert limits is not None
    return CircuitInput(
        circuit_id=circuit_id,
        name=body.name,
        parent_id=body.parent_id,
        phase_limits_a=limits,
        base_load_a=three(body.base_load_a),
        safety_margin_a=body.safety_margin_a,
        members=tuple(
            MemberInput(
                charge_point_id=m.charge_point_id,
                connector_id=m.connector_id or 0,
                phase_rotation=m.phase_rotation,
                phases=m.phases,
                priority=m.priority,
                min_current_a=m.min_current_a,
                max_current_a=m.max_current_a,
            )
            for m in body.members
        ),
    )


def add_circuit_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/circuits", tags=["circuits"], dependencies=[require(Scope.READ)])
    async def list_circuits() -> Page[CircuitOut]:
        """Every circuit with its members."""

        rows = await ctx.read(circuits.list_circuits)
        members = await ctx.read(lambda s: circuits.list_members(s))
        items = [_circuit_out(row, members) for row in rows]
        return Page[CircuitOut](items=items, total=len(items))

    @router.put(
        "/circuits/{circuit_id}",
        tags=["circuits"],
        dependencies=[require(Scope.ADMIN)],
        responses={
            404: {"description": "a member's charge point is unknown"},
            409: {"description": "a member's connector is already on another circuit"},
            422: {"description": "not a tree (unknown parent, cycle) or bad bounds"},
        },
    )
    async def put_circuit(
        circuit_id: CircuitPath, body: CircuitIn, response: Response
    ) -> CircuitOut:
        """Create or replace a circuit; the balancer runs on its tree right after."""
        created = await ctx.circuits.put(_input(circuit_id, body))
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return await _get(ctx, circuit_id)

    @router.get("/circuits/{circuit_id}", tags=["circuits"], dependencies=[require(Scope.READ)])
    async def get_circuit(circuit_id: CircuitPath) -> CircuitOut:
        """One circuit with its members."""
        return await _get(ctx, circuit_id)

    @router.delete(
        "/circuits/{circuit_id}",
        tags=["circuits"],
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=[require(Scope.ADMIN)],
        responses={409: {"description": "it still feeds sub-circuits"}},
    )
    async def delete_circuit(circuit_id: CircuitPath) -> None:
        """Remove a circuit (its members are no longer balanced)."""
        await ctx.circuits.delete(circuit_id)

    @router.get(
        "/circuits/{circuit_id}/allocation",
        tags=["circuits"],
        dependencies=[require(Scope.READ)],
    )
    async def get_allocation(circuit_id: CircuitPath) -> AllocationsOut:
        """The limit each connector of the circuit holds from the balancer, and why."""
        await _get(ctx, circuit_id)
        rows: list[CircuitAllocation] = await ctx.read(
            lambda s: circuits.allocations(s, [circuit_id])
        )
        return AllocationsOut(
            circuit_id=circuit_id,
            connectors=[AllocationOut.model_validate(r, from_attributes=True) for r in rows],
        )

    @router.get(
        "/circuits/{circuit_id}/allocation/history",
        tags=["circuits"],
        dependencies=[require(Scope.READ)],
    )
    async def get_allocation_history(
        circuit_id: CircuitPath,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Page[AllocationChangeOut]:
        """The limits given on the circuit, newest first."""
        await _get(ctx, circuit_id)
        rows: list[CircuitAllocationChange] = await ctx.read(
            lambda s: circuits.allocation_history(s, circuit_id, limit=limit)
        )
        items = [AllocationChangeOut.model_validate(r, from_attributes=True) for r in rows]
        return Page[AllocationChangeOut](items=items, total=len(items))


async def _get(ctx: ApiContext, circuit_id: str) -> CircuitOut:
    row = await ctx.read(lambda s: circuits.get_circuit(s, circuit_id))
    members = await ctx.read(lambda s: circuits.list_members(s, [circuit_id]))
    if row is None:
        raise not_found(f"circuit {circuit_id}")
    return _circuit_out(row, members)
