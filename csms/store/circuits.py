"""Circuits, members, allocations and what the balancer learned (docs/load-balancing.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.store.tables import (
    ChargerBalancing,
    ChargingProfile,
    Circuit,
    CircuitAllocation,
    CircuitAllocationChange,
    CircuitMember,
    ConfigurationKey,
    Connector,
    Transaction,
)


async def get_circuit(session: AsyncSession, circuit_id: str) -> Circuit | None:
    return await session.get(Circuit, circuit_id)


async def list_circuits(session: AsyncSession) -> list[Circuit]:
    rows = await session.execute(select(Circuit).order_by(col(Circuit.id)))
    return list(rows.scalars())


async def list_members(
    session: AsyncSession, circuit_ids: Sequence[str] | None = None
) -> list[CircuitMember]:
    query = select(CircuitMember)
    if circuit_ids is not None:
        query = query.where(col(CircuitMember.circuit_id).in_(circuit_ids))
    rows = await session.execute(
        query.order_by(col(CircuitMember.charge_point_id), col(CircuitMember.connector_id))
    )
    return list(rows.scalars())


async def put_circuit(
    session: AsyncSession, *, circuit: Circuit, members: Sequence[CircuitMember], now: datetime
) -> bool:
    """Create or replace a circuit and its member list; True when it was created."""
    existing = await session.get(Circuit, circuit.id)
    created = existing is None
    if existing is None:
        circuit.created_at = circuit.updated_at = now
        session.add(circuit)
    else:
        for name in ("name", "parent_id", "phase_limits_a", "base_load_a", "safety_margin_a"):
            setattr(existing, name, getattr(circuit, name))
        existing.updated_at = now
    await session.execute(delete(CircuitMember).where(col(CircuitMember.circuit_id) == circuit.id))
    await session.flush()
    for member in members:
        session.add(member)
    await session.flush()
    return created


async def delete_circuit(session: AsyncSession, circuit_id: str) -> bool:
    """Remove a circuit, its members and their allocations; False when it did not exist."""
    row = await session.get(Circuit, circuit_id)
    if row is None:
        return False
    await session.execute(delete(CircuitMember).where(col(CircuitMember.circuit_id) == circuit_id))
    await session.execute(
        delete(CircuitAllocation).where(col(CircuitAllocation.circuit_id) == circuit_id)
    )
    await session.delete(row)
    return True


async def children_of(session: AsyncSession, circuit_id: str) -> list[str]:
    rows = await session.execute(
        select(col(Circuit.id))
        .where(col(Circuit.parent_id) == circuit_id)
        .order_by(col(Circuit.id))
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class ActiveSession:
    """An open transaction on a member connector."""

    transaction_id: int
    charge_point_id: str
    connector_id: int
    started_at: datetime | None


async def active_sessions(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> list[ActiveSession]:
    rows = await session.execute(
        select(Transaction)
        .where(
            col(Transaction.charge_point_id).in_(charge_point_ids),
            col(Transaction.stop_timestamp).is_(None),
            col(Transaction.orphan_ref).is_(None),
        )
        .order_by(col(Transaction.id))
    )
    return [
        ActiveSession(row.id, row.charge_point_id, row.connector_id, row.start_timestamp)
        for row in rows.scalars()
        if row.id is not None
    ]


async def configuration(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """The known configuration keys per charger."""
    rows = await session.execute(
        select(ConfigurationKey).where(col(ConfigurationKey.charge_point_id).in_(charge_point_ids))
    )
    found: dict[str, dict[str, str | None]] = {}
    for row in rows.scalars():
        found.setdefault(row.charge_point_id, {})[row.key] = row.value
    return found


async def profiles_of(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> dict[str, list[ChargingProfile]]:
    rows = await session.execute(
        select(ChargingProfile).where(col(ChargingProfile.charge_point_id).in_(charge_point_ids))
    )
    found: dict[str, list[ChargingProfile]] = {}
    for row in rows.scalars():
        found.setdefault(row.charge_point_id, []).append(row)
    return found


async def balancing_of(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> dict[str, ChargerBalancing]:
    rows = await session.execute(
        select(ChargerBalancing).where(col(ChargerBalancing.charge_point_id).in_(charge_point_ids))
    )
    return {row.charge_point_id: row for row in rows.scalars()}


async def set_balancing(
    session: AsyncSession,
    *,
    charge_point_id: str,
    strategy: str,
    honours_limits: str | None = None,
    note: str | None = None,
    now: datetime,
) -> None:
    row = await session.get(ChargerBalancing, charge_point_id)
    if row is None:
        row = ChargerBalancing(charge_point_id=charge_point_id, strategy=strategy)
        session.add(row)
    row.strategy = strategy
    if honours_limits is not None:
        row.honours_limits = honours_limits
    if note is not None:
        row.note = note
    row.updated_at = now


async def allocations(
    session: AsyncSession, circuit_ids: Sequence[str] | None = None
) -> list[CircuitAllocation]:
    query = select(CircuitAllocation)
    if circuit_ids is not None:
        query = query.where(col(CircuitAllocation.circuit_id).in_(circuit_ids))
    rows = await session.execute(
        query.order_by(col(CircuitAllocation.charge_point_id), col(CircuitAllocation.connector_id))
    )
    return list(rows.scalars())


async def record_allocation(
    session: AsyncSession,
    *,
    row: CircuitAllocation,
    previous_a: float | None,
    history: bool = True,
    at: datetime | None = None,
) -> None:
    """Keep a connector's new limit, and add it to the history unless it is only what is
    about to be sent; the history row is dated `at`, by default when the limit changed."""
    existing = await session.get(CircuitAllocation, (row.charge_point_id, row.connector_id))
    if existing is None:
        session.add(row)
    else:
        for name in (
            "circuit_id",
            "transaction_id",
            "limit_a",
            "phases",
            "reason",
            "status",
            "lease_until",
            "changed_at",
        ):
            setattr(existing, name, getattr(row, name))
    if not history:
        return
    session.add(
        CircuitAllocationChange(
            circuit_id=row.circuit_id,
            charge_point_id=row.charge_point_id,
            connector_id=row.connector_id,
            transaction_id=row.transaction_id,
            limit_a=row.limit_a,
            previous_a=previous_a,
            phases=row.phases,
            reason=row.reason,
            at=at or row.changed_at,
        )
    )


async def drop_allocations(session: AsyncSession, keys: Sequence[tuple[str, int]]) -> None:
    """Forget the limits of connectors whose sessions ended."""
    for charge_point_id, connector_id in keys:
        await session.execute(
            delete(CircuitAllocation).where(
                col(CircuitAllocation.charge_point_id) == charge_point_id,
                col(CircuitAllocation.connector_id) == connector_id,
            )
        )


async def allocation_history(
    session: AsyncSession, circuit_id: str, *, limit: int
) -> list[CircuitAllocationChange]:
    rows = await session.execute(
        select(CircuitAllocationChange)
        .where(col(CircuitAllocationChange.circuit_id) == circuit_id)
        .order_by(col(CircuitAllocationChange.id).desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def last_allocation_times(session: AsyncSession) -> dict[str, datetime | None]:
    """The time of each circuit's newest allocation change, in one query (the dashboard's
    circuits page). Newest by id, as `allocation_history` orders them; circuits without
    history are absent."""
    newest = (
        select(func.max(col(CircuitAllocationChange.id)))
        .group_by(col(CircuitAllocationChange.circuit_id))
        .scalar_subquery()
    )
    rows = await session.execute(
        select(col(CircuitAllocationChange.circuit_id), col(CircuitAllocationChange.at)).where(
            col(CircuitAllocationChange.id).in_(newest)
        )
    )
    return {circuit_id: at for circuit_id, at in rows.all()}


async def connector_counts(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> dict[str, int]:
    """How many connectors (other than 0) each charger reported a status for."""
    rows = await session.execute(
        select(col(Connector.charge_point_id), func.count())
        .where(
            col(Connector.charge_point_id).in_(charge_point_ids), col(Connector.connector_id) > 0
        )
        .group_by(col(Connector.charge_point_id))
    )
    return {cp: int(count) for cp, count in rows.all()}
