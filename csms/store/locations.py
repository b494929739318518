"""Locations: the operator's OCPI Location data, and the chargers linked to each."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.session import ChargerAtLocation
from csms.store.tables import ChargePoint, Connector, Location


async def get_location(session: AsyncSession, location_id: str) -> Location | None:
    return await session.get(Location, location_id)


async def upsert_location(
    session: AsyncSession, *, location_id: str, data: dict[str, Any], now: datetime
) -> bool:
    """Create or replace a location's data. Returns True when it was created."""
    row = await session.get(Location, location_id)
    created = row is None
    if row is None:
        row = Location(id=location_id)
        session.add(row)
    row.data = data
    row.last_updated = now
    await session.flush()
    return created


async def delete_location(session: AsyncSession, *, location_id: str) -> bool:
    await session.execute(
        update(ChargePoint)
        .where(col(ChargePoint.location_id) == location_id)
        .values(location_id=None)
    )
    result = await session.execute(delete(Location).where(col(Location.id) == location_id))
    return bool(getattr(result, "rowcount", 0))


async def list_locations(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[Location], int]:
    total = (await session.execute(select(func.count()).select_from(Location))).scalar_one()
    rows = await session.execute(
        select(Location).order_by(col(Location.id)).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)


class Online(Protocol):
    def __contains__(self, charge_point_id: object) -> bool: ...


async def chargers_at(
    session: AsyncSession, location_id: str, *, online: Online
) -> list[ChargerAtLocation]:
    """The chargers linked to a location, with their connectors' current status."""
    chargers = await session.execute(
        select(ChargePoint)
        .where(col(ChargePoint.location_id) == location_id)
        .order_by(col(ChargePoint.id))
    )
    found = []
    for charger in chargers.scalars():
        connectors = await session.execute(
            select(Connector)
            .where(col(Connector.charge_point_id) == charger.id)
            .order_by(col(Connector.connector_id))
        )
        found.append(
            ChargerAtLocation(
                charge_point_id=charger.id,
                connector_spec=charger.connector_spec,
                connectors=[(c.connector_id, c.status, c.updated_at) for c in connectors.scalars()],
                online=charger.id in online,
            )
        )
    return found
