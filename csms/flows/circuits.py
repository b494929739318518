"""Circuit edits from the API: checks, the write with its `circuit.updated` event, and a
balancer pass on the tree (docs/load-balancing.md, "Circuits")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.allocator import ConnectorKey
from csms.core.balancing import SAFE_DEFAULT_ID, Caps, Strategy
from csms.core.circuits import CircuitSpec, MemberSpec, Rotation, root_of, tree_problem
from csms.core.events import Event
from csms.errors import CircuitError
from csms.events.circuits import circuit_allocation, circuit_updated
from csms.store import chargers, circuits, outbox
from csms.store.circuits import ActiveSession
from csms.store.db import Database
from csms.store.tables import Circuit, CircuitAllocation, CircuitMember


@dataclass(frozen=True)
class MemberInput:
    charge_point_id: str
    connector_id: int
    phase_rotation: Rotation
    phases: int
    priority: int
    min_current_a: float
    max_current_a: float


@dataclass(frozen=True)
class CircuitInput:
    circuit_id: str
    name: str
    parent_id: str | None
    phase_limits_a: tuple[float, float, float]
    base_load_a: tuple[float, float, float] | None
    safety_margin_a: float
    members: tuple[MemberInput, ...]


def spec_of(row: Circuit) -> CircuitSpec:
    limits = row.phase_limits_a
    base = row.base_load_a or [0.0, 0.0, 0.0]
    return CircuitSpec(
        row.id,
        row.parent_id,
        (limits[0], limits[1], limits[2]),
        (base[0], base[1], base[2]),
        row.safety_margin_a,
    )


class CircuitFlows:
    """Create, replace and delete circuits; every edit wakes the balancer on its tree."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Callable[[], datetime],
        on_changed: Callable[[Sequence[str]], None],
    ) -> None:
        self._database = database
        self._clock = clock
        self._on_changed = on_changed

    async def put(self, body: CircuitInput) -> bool:
        """Create or replace a circuit; True when created.

        Raises:
            CircuitError: 422 not a tree or bad bounds, 409 a connector in another circuit,
                404 an unknown charger.
            StoreError: the database failed.
        """
        _check_bounds(body)
        created: bool = await self._database.writer.submit(lambda s: self._put(s, body))
        self._on_changed([body.circuit_id])
        return created

    async def _put(self, session: AsyncSession, body: CircuitInput) -> bool:
        rows = {row.id: row for row in await circuits.list_circuits(session)}
        specs = {cid: spec_of(row) for cid, row in rows.items()}
        specs[body.circuit_id] = CircuitSpec(
            body.circuit_id, body.parent_id, body.phase_limits_a, (0.0, 0.0, 0.0)
        )
        problem = tree_problem(list(specs.values()))
        if problem is not None:
            raise CircuitError(problem)
        members = await circuits.list_members(session)
        taken = {
            (m.charge_point_id, m.connector_id): m.circuit_id
            for m in members
            if m.circuit_id != body.circuit_id
        }
        for member in body.members:
            await _check_member(session, member, taken)
        now = self._clock()
        created = await circuits.put_circuit(
            session,
            circuit=Circuit(
                id=body.circuit_id,
                name=body.name,
                parent_id=body.parent_id,
                phase_limits_a=list(body.phase_limits_a),
                base_load_a=list(body.base_load_a) if body.base_load_a else None,
                safety_margin_a=body.safety_margin_a,
            ),
            members=[
                CircuitMember(
                    charge_point_id=m.charge_point_id,
                    connector_id=m.connector_id,
                    circuit_id=body.circuit_id,
                    phase_rotation=m.phase_rotation.value,
                    phases=m.phases,
                    priority=m.priority,
                    min_current_a=m.min_current_a,
                    max_current_a=m.max_current_a,
                )
                for m in body.members
            ],
            now=now,
        )
        # The change and its event commit together (docs/events.md, "Delivery").
        event = circuit_updated(body.circuit_id, published(body), at=now)
        await outbox.add_events(session, [event], now=now)
        return created

    async def delete(self, circuit_id: str) -> None:
        """Remove a circuit with no sub-circuits.

        Raises:
            CircuitError: 404 unknown, 409 it still has sub-circuits.
        """
        now = self._clock()
        await self._database.writer.submit(lambda s: _delete(s, circuit_id, now))
        self._on_changed([circuit_id])


def published(body: CircuitInput) -> dict[str, Any]:
    """The circuit as `circuit.updated` carries it: `GET /api/v1/circuits/{id}`'s body
    without its timestamps (the event's `time` is the change's)."""
    return {
        "id": body.circuit_id,
        "name": body.name,
        "parentId": body.parent_id,
        "phaseLimitsA": list(body.phase_limits_a),
        "baseLoadA": list(body.base_load_a) if body.base_load_a else None,
        "safetyMarginA": body.safety_margin_a,
        "members": [
            {
                "chargePointId": m.charge_point_id,
                "connectorId": m.connector_id or None,
                "phaseRotation": m.phase_rotation.value,
                "phases": m.phases,
                "priority": m.priority,
                "minCurrentA": m.min_current_a,
                "maxCurrentA": m.max_current_a,
            }
            for m in body.members
        ],
    }


async def _delete(session: AsyncSession, circuit_id: str, now: datetime) -> None:
    children = await circuits.children_of(session, circuit_id)
    if children:
        raise CircuitError(
            f"circuit {circuit_id} still feeds {', '.join(children)}; delete those first",
            status=409,
        )
    if not await circuits.delete_circuit(session, circuit_id):
        raise CircuitError(f"circuit {circuit_id} not found", status=404)
    await outbox.add_events(session, [circuit_updated(circuit_id, None, at=now)], now=now)


def _check_bounds(body: CircuitInput) -> None:
    if any(limit < 0 for limit in body.phase_limits_a):
        raise CircuitError("phaseLimitsA must not be negative")
    if body.base_load_a and any(load < 0 for load in body.base_load_a):
        raise CircuitError("baseLoadA must not be negative")
    if body.parent_id == body.circuit_id:
        raise CircuitError(f"circuit {body.circuit_id} would be its own ancestor")
    seen: set[tuple[str, int]] = set()
    for m in body.members:
        key = (m.charge_point_id, m.connector_id)
        if key in seen:
            raise CircuitError(f"member {m.charge_point_id}/{m.connector_id} is listed twice")
        seen.add(key)
        if m.min_current_a > m.max_current_a:
            raise CircuitError(
                f"member {m.charge_point_id}: minCurrentA {m.min_current_a} is above "
                f"maxCurrentA {m.max_current_a}"
            )
    for cp in {m.charge_point_id for m in body.members}:
        if (cp, 0) in seen and any(k[0] == cp and k[1] != 0 for k in seen):
            raise CircuitError(f"charger {cp} is a member both whole and by connector")


async def _check_member(
    session: AsyncSession,
    member: MemberInput,
    taken: dict[tuple[str, int], str],
) -> None:
    if await chargers.get_charge_point(session, member.charge_point_id) is None:
        raise CircuitError(f"charge point {member.charge_point_id} not found", status=404)
    clashes = [
        other
        for (cp, connector), other in taken.items()
        if cp == member.charge_point_id
        and (connector == member.connector_id or 0 in (connector, member.connector_id))
    ]
    if clashes:
        raise CircuitError(
            f"charge point {member.charge_point_id} connector {member.connector_id} is already "
            f"on circuit {clashes[0]}",
            status=409,
        )


# -- what the balancer reads (csms.flows.balancing) --

# The smart-charging keys a charger is asked for before its first profile (OCPP 1.6 §9.4).
SMART_KEYS = (
    "ChargingScheduleMaxPeriods",
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit",
)


@dataclass
class BalancerSnapshot:
    """What one balancer pass reads about a root circuit's tree (csms.flows.balancing)."""

    circuits: dict[str, CircuitSpec]
    members: dict[tuple[str, int], MemberSpec]
    sessions: list[ActiveSession]
    caps: dict[str, Caps]
    strategy: dict[str, Strategy]
    violating: set[str]
    applied: dict[ConnectorKey, CircuitAllocation]
    connectors: dict[str, int]
    probed: set[str]  # chargers whose smart-charging keys are known
    # The safe defaults each charger accepted, per connector (0: all of them).
    defaults: dict[tuple[str, int], dict[str, Any]]
    shares: dict[tuple[str, int], int] = field(default_factory=dict)
    # The grid phases each session is counted on in this pass (the allocator's demands).
    phases: dict[ConnectorKey, int] = field(default_factory=dict)


def recounted(
    snap: BalancerSnapshot, *, sending: set[ConnectorKey], now: datetime
) -> list[tuple[CircuitAllocation, Event]]:
    """Accepted limits that stay as they are while their session is now counted on another
    number of phases (meter values showed the car's): the row to keep, and its
    `circuit.allocation` with `limitA` unchanged (docs/events.md). Connectors with a
    profile about to be sent are left to that."""
    found = []
    for key, row in snap.applied.items():
        phases = snap.phases.get(key)
        if row.status != "accepted" or phases is None or phases == row.phases or key in sending:
            continue
        # `changed_at` stays: it dates the limit, which hysteresis and overdraw checks use.
        kept = CircuitAllocation(**{**row.model_dump(), "phases": phases})
        event = circuit_allocation(
            key[0],
            circuit_id=row.circuit_id,
            connector_id=key[1],
            limit_a=row.limit_a,
            previous_a=row.limit_a,
            phases=phases,
            transaction_id=row.transaction_id,
            reason=row.reason,
            at=now,
        )
        found.append((kept, event))
    return found


async def keep_recounted(
    session: AsyncSession, *, recount: Sequence[tuple[CircuitAllocation, Event]], now: datetime
) -> None:
    """Write what `recounted` found, each row with its event."""
    for row, _event in recount:
        await circuits.record_allocation(session, row=row, previous_a=row.limit_a, at=now)
    await outbox.add_events(session, [event for _row, event in recount], now=now)


async def read_trees(session: AsyncSession) -> tuple[list[Any], list[Any]]:
    return await circuits.list_circuits(session), await circuits.list_members(session)


async def read_snapshot(session: AsyncSession, root: str) -> BalancerSnapshot | None:
    rows = await circuits.list_circuits(session)
    specs = {row.id: spec_of(row) for row in rows}
    if root not in specs:
        return None
    tree = {cid: spec for cid, spec in specs.items() if root_of(specs, cid) == root}
    members = await circuits.list_members(session, list(tree))
    cps = sorted({m.charge_point_id for m in members})
    member_specs = {
        (m.charge_point_id, m.connector_id): MemberSpec(
            m.charge_point_id,
            m.connector_id,
            m.circuit_id,
            Rotation(m.phase_rotation),
            m.phases,
            m.priority,
            m.min_current_a,
            m.max_current_a,
        )
        for m in members
    }
    configuration = await circuits.configuration(session, cps)
    learned = await circuits.balancing_of(session, cps)
    return BalancerSnapshot(
        circuits=tree,
        members=member_specs,
        sessions=await circuits.active_sessions(session, cps),
        caps={cp: Caps.from_configuration(configuration.get(cp, {})) for cp in cps},
        strategy={cp: Strategy(row.strategy) for cp, row in learned.items()},
        violating={cp for cp, row in learned.items() if row.honours_limits == "violating"},
        applied={
            (row.charge_point_id, row.connector_id): row
            for row in await circuits.allocations(session, list(tree))
        },
        connectors=await circuits.connector_counts(session, cps),
        probed={cp for cp, keys in configuration.items() if SMART_KEYS[0] in keys},
        defaults={
            (cp, row.connector_id): row.profile
            for cp, rows in (await circuits.profiles_of(session, cps)).items()
            for row in rows
            if row.charging_profile_id == SAFE_DEFAULT_ID + row.connector_id
        },
    )
