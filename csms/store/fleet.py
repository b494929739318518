"""Reads for the dashboard: the fleet at a glance, a charger's recent events, chart samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.fleet import ChargerRow, SampleRow
from csms.store.chargers import list_connectors
from csms.store.tables import ChargePoint, MeterValue, OutboxEvent, Transaction

# The fleet view reads every charger; past this it shows the first ones by id.
FLEET_LIMIT = 20_000
CHART_MEASURANDS = ("Power.Active.Import", "Energy.Active.Import.Register")


async def fleet_rows(session: AsyncSession, *, limit: int = FLEET_LIMIT) -> list[ChargerRow]:
    """Every charger with its connectors, by id."""
    chargers = list(
        (
            await session.execute(select(ChargePoint).order_by(col(ChargePoint.id)).limit(limit))
        ).scalars()
    )
    connectors: dict[str, list[tuple[int, str, str]]] = {}
    for connector in await list_connectors(session, [row.id for row in chargers]):
        connectors.setdefault(connector.charge_point_id, []).append(
            (connector.connector_id, connector.status, connector.error_code)
        )
    return [
        ChargerRow(
            charge_point_id=row.id,
            vendor=row.vendor,
            model=row.model,
            firmware_version=row.firmware_version,
            security_profile=row.security_profile,
            last_seen=row.last_seen,
            disconnected_at=row.disconnected_at,
            connected_at=row.connected_at,
            connectors=tuple(connectors.get(row.id, ())),
        )
        for row in chargers
    ]


@dataclass(frozen=True)
class RecentEvent:
    time: datetime
    type: str
    data: dict[str, Any]


async def recent_events(
    session: AsyncSession, *, charge_point_id: str, limit: int = 100
) -> list[RecentEvent]:
    """A charger's latest events from the outbox (kept for `mqtt.outbox_retention`), newest
    first."""
    rows = await session.execute(
        select(OutboxEvent)
        .where(col(OutboxEvent.charge_point_id) == charge_point_id)
        .order_by(col(OutboxEvent.id).desc())
        .limit(limit)
    )
    return [
        RecentEvent(time=row.time, type=row.type, data=row.data)
        for row in rows.scalars()
        if row.time is not None
    ]


async def chart_samples(session: AsyncSession, *, transaction_id: int) -> list[SampleRow]:
    """The power and energy samples of a transaction, in time order."""
    rows = await session.execute(
        select(MeterValue)
        .where(col(MeterValue.transaction_id) == transaction_id)
        .where(col(MeterValue.measurand).in_(CHART_MEASURANDS))
        .order_by(col(MeterValue.timestamp), col(MeterValue.id))
    )
    return [
        SampleRow(
            timestamp=row.timestamp,
            measurand=row.measurand,
            unit=row.unit,
            phase=row.phase or None,
            value=row.value,
        )
        for row in rows.scalars()
        if row.timestamp is not None
    ]


async def latest_transactions(
    session: AsyncSession, *, charge_point_id: str | None, limit: int, offset: int
) -> tuple[Sequence[Transaction], int]:
    """Transactions newest first, of one charger or all."""
    query = select(Transaction)
    count = select(func.count()).select_from(Transaction)
    if charge_point_id is not None:
        query = query.where(col(Transaction.charge_point_id) == charge_point_id)
        count = count.where(col(Transaction.charge_point_id) == charge_point_id)
    rows = await session.execute(
        query.order_by(col(Transaction.id).desc()).limit(limit).offset(offset)
    )
    total = (await session.execute(count)).scalar_one()
    return list(rows.scalars()), int(total)


async def active_transactions(
    session: AsyncSession, *, charge_point_id: str
) -> Sequence[Transaction]:
    rows = await session.execute(
        select(Transaction)
        .where(col(Transaction.charge_point_id) == charge_point_id)
        .where(col(Transaction.stop_timestamp).is_(None))
        .order_by(col(Transaction.id))
    )
    return list(rows.scalars())
