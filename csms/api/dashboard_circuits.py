"""The dashboard's circuits section: each circuit's per-phase load against its limit, its
members and the limits they hold from the balancer (docs/operations.md, "Dashboard";
docs/load-balancing.md).

Read-only: a visitor with the `read` scope (every role) sees it; circuits are managed
through the API (`PUT /api/v1/circuits/{id}`, docs/api.md "Circuits").

A bar is what the allocator counts on a grid phase of the circuit (csms/core/allocator.py):
the base load of the circuit and of every circuit below it, plus the limit each connector
below it holds, on the grid phases it is counted on (csms/core/circuits.py `grid_phases`:
the member's phase rotation, and the allocation's `phases`, fewer than the member's wiring
once meter values showed a car drawing on fewer, as the balancer counts it).
An allocation counts while its session runs: the balancer forgets it on its next pass after
the stop, but the charger's TxProfile already ended with the transaction (OCPP 1.6 §3.13.1:
a TxProfile applies to its transaction only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from csms.api.context import ApiContext
from csms.api.dashboard_render import Renderer, to_login
from csms.core.allocator import PHASES
from csms.core.circuits import Rotation, grid_phases
from csms.store import circuits
from csms.store.tables import Circuit, CircuitAllocation, CircuitMember

PHASE_NAMES = ("L1", "L2", "L3")
# The events after which the section is re-fetched (csms/api/static/dashboard.js).
LIVE_ON = (
    "circuit.allocation",
    "circuit.member.uncontrollable",
    "circuit.updated",
    "session.stopped",
)


@dataclass(frozen=True)
class PhaseBar:
    """One grid phase of a circuit: its limit, the base load and the allocated amps on it."""

    phase: str
    limit_a: float
    base_a: float
    allocated_a: float

    @property
    def used_a(self) -> float:
        return self.base_a + self.allocated_a

    @property
    def over(self) -> bool:
        return self.used_a > self.limit_a

    @property
    def base_percent(self) -> float:
        """The base load's part of the bar's width (0 to 100)."""
        return self._percent(self.base_a)

    @property
    def allocated_percent(self) -> float:
        """The allocated part of the bar's width, after the base load's (0 to 100 in all)."""
        return round(self._percent(self.used_a) - self._percent(self.base_a), 1)

    def _percent(self, amps: float) -> float:
        if self.limit_a <= 0:
            return 100.0 if amps > 0 else 0.0
        return round(min(max(amps / self.limit_a, 0.0), 1.0) * 100, 1)


@dataclass(frozen=True)
class Held:
    """The limit a connector holds from the balancer, for its running session."""

    connector_id: int
    limit_a: float
    phases: int | None  # fewer than the member's: the car's, from its meter values
    reason: str
    status: str
    transaction_id: int | None
    changed_at: datetime | None


@dataclass(frozen=True)
class MemberView:
    member: CircuitMember
    grid: tuple[str, ...]  # the grid phases it loads, "L1".."L3"
    held: tuple[Held, ...]


@dataclass(frozen=True)
class CircuitView:
    circuit: Circuit
    depth: int
    children: tuple[str, ...]
    bars: tuple[PhaseBar, ...]
    members: tuple[MemberView, ...]
    last_allocation: datetime | None


def _grid_of(member: CircuitMember, phases: int | None = None) -> tuple[int, ...]:
    """The grid phases a member loads, or a car on it counted on `phases` of them."""
    try:
        rotation = Rotation(member.phase_rotation)
    except ValueError:
        rotation = Rotation.RST  # the API admits only the three rotations
    return grid_phases(rotation, min(phases or member.phases, member.phases))


def _member_of(
    members: Mapping[tuple[str, int], CircuitMember], row: CircuitAllocation
) -> CircuitMember | None:
    # A connector is a member as itself, or through its whole charger (connector 0).
    return members.get((row.charge_point_id, row.connector_id)) or members.get(
        (row.charge_point_id, 0)
    )


def _tree_order(rows: Sequence[Circuit]) -> list[tuple[Circuit, int]]:
    """The circuits depth first, each root then the circuits it feeds, with their depth."""
    ids = {row.id for row in rows}
    below: dict[str | None, list[Circuit]] = {}
    for row in rows:
        parent = row.parent_id if row.parent_id in ids else None
        below.setdefault(parent, []).append(row)
    ordered: list[tuple[Circuit, int]] = []
    stack = [(row, 0) for row in reversed(below.get(None, []))]
    while stack:
        row, depth = stack.pop()
        ordered.append((row, depth))
        stack.extend((child, depth + 1) for child in reversed(below.get(row.id, [])))
    return ordered


def circuit_views(
    rows: Sequence[Circuit],
    members: Sequence[CircuitMember],
    allocations: Sequence[CircuitAllocation],
    *,
    running: set[tuple[str, int]],
    last: Mapping[str, datetime | None],
) -> list[CircuitView]:
    """What the circuits page shows, from the stored circuits, members and allocations.

    Args:
        running: the connectors with an open transaction; other allocations are ended.
        last: the time of each circuit's newest allocation change; a circuit shows the
            newest of its own and those of the circuits below it, as its bars do.
    """
    by_key = {(m.charge_point_id, m.connector_id): m for m in members}
    held = [a for a in allocations if (a.charge_point_id, a.connector_id) in running]
    direct = {row.id: [0.0] * PHASES for row in rows}
    for allocation in held:
        member = _member_of(by_key, allocation)
        if member is None or allocation.circuit_id not in direct:
            continue
        for phase in _grid_of(member, allocation.phases):
            direct[allocation.circuit_id][phase] += allocation.limit_a
    base = {row.id: list(row.base_load_a or [0.0] * PHASES) for row in rows}
    ordered = _tree_order(rows)
    children = {row.id: tuple(r.id for r in rows if r.parent_id == row.id) for row in rows}
    # Load counts on every circuit it passes through: sum each subtree, leaves first.
    total_alloc = {cid: list(values) for cid, values in direct.items()}
    total_base = {cid: list(values) for cid, values in base.items()}
    newest = dict(last)
    for row, _depth in reversed(ordered):
        for child in children[row.id]:
            for phase in range(PHASES):
                total_alloc[row.id][phase] += total_alloc[child][phase]
                total_base[row.id][phase] += total_base[child][phase]
            newest[row.id] = _later(newest.get(row.id), newest.get(child))
    views = []
    for row, depth in ordered:
        bars = tuple(
            PhaseBar(
                phase=PHASE_NAMES[phase],
                limit_a=row.phase_limits_a[phase],
                base_a=round(total_base[row.id][phase], 1),
                allocated_a=round(total_alloc[row.id][phase], 1),
            )
            for phase in range(PHASES)
        )
        mine = [m for m in members if m.circuit_id == row.id]
        member_views = tuple(
            MemberView(
                member=m,
                grid=tuple(PHASE_NAMES[p] for p in _grid_of(m)),
                held=tuple(_held(a) for a in held if _holds(m, a)),
            )
            for m in mine
        )
        views.append(
            CircuitView(row, depth, children[row.id], bars, member_views, newest.get(row.id))
        )
    return views


def _later(one: datetime | None, other: datetime | None) -> datetime | None:
    if one is None or other is None:
        return one or other
    return max(one, other)


def _holds(member: CircuitMember, allocation: CircuitAllocation) -> bool:
    return (
        allocation.circuit_id == member.circuit_id
        and allocation.charge_point_id == member.charge_point_id
        and member.connector_id in (0, allocation.connector_id)
    )


def _held(row: CircuitAllocation) -> Held:
    return Held(
        connector_id=row.connector_id,
        limit_a=row.limit_a,
        phases=row.phases,
        reason=row.reason,
        status=row.status,
        transaction_id=row.transaction_id,
        changed_at=row.changed_at,
    )


def add_circuit_pages(router: APIRouter, ctx: ApiContext, render: Renderer) -> None:
    """`/circuits` (every circuit with its bars and members) and `/circuits-table` (the
    same without the page around it, re-fetched on live events)."""

    async def query(session: Any) -> list[CircuitView]:
        rows = await circuits.list_circuits(session)
        members = await circuits.list_members(session)
        allocations = await circuits.allocations(session)
        chargers = sorted({a.charge_point_id for a in allocations})
        running = {
            (s.charge_point_id, s.connector_id)
            for s in await circuits.active_sessions(session, chargers)
        }
        # Allocations are recorded on their member's circuit: a circuit without members
        # has no history of its own (its time comes from the circuits below it).
        last = await circuits.last_allocation_times(session)
        return circuit_views(rows, members, allocations, running=running, last=last)

    @router.get("/circuits", response_class=HTMLResponse)
    async def circuits_page(request: Request) -> Response:
        visitor = await render.visitor(request)
        if visitor is None:
            return to_login(request)
        views = await ctx.read(query)
        return render.page(
            request,
            visitor,
            "circuits.html",
            circuits=views,
            live_on=" ".join(LIVE_ON),
        )

    @router.get("/circuits-table", response_class=HTMLResponse)
    async def circuits_table(request: Request) -> Response:
        """The circuits alone, re-fetched when a live event says an allocation changed."""
        visitor = await render.visitor(request)
        if visitor is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
        views = await ctx.read(query)
        return render.page(request, visitor, "circuits_table.html", circuits=views)
