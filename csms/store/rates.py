"""Electricity rates: purchase prices per site (location) or circuit, and uploaded series;
and the circuit a connector is on, for the rate its sessions are bought at."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.ocpi import DayOfWeek
from csms.core.rates import ElectricityRate as RateFacts
from csms.core.rates import PricePoint, RatePlace, RateScope, TimeOfUse, choose_rate
from csms.store.sql import page, rowcount
from csms.store.tables import (
    Circuit,
    CircuitMember,
    ElectricityPrice,
    ElectricityRate,
    table_of,
)


async def put_rate(session: AsyncSession, rate: ElectricityRate) -> bool:
    row = await session.get(ElectricityRate, rate.id)
    if row is None:
        session.add(rate)
        await session.flush()
        return True
    for name in ("scope", "target", "currency", "time_of_use", "time_zone", "updated_at"):
        setattr(row, name, getattr(rate, name))
    await session.flush()
    return False


async def get_rate(session: AsyncSession, rate_id: str) -> ElectricityRate | None:
    return await session.get(ElectricityRate, rate_id)


async def list_rates(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[ElectricityRate], int]:
    return await page(session, ElectricityRate, None, col(ElectricityRate.id), limit, offset)


async def delete_rate(session: AsyncSession, *, rate_id: str) -> bool:
    await session.execute(delete(ElectricityPrice).where(col(ElectricityPrice.rate_id) == rate_id))
    result = await session.execute(
        delete(ElectricityRate).where(col(ElectricityRate.id) == rate_id)
    )
    return bool(rowcount(result))


async def put_prices(
    session: AsyncSession, *, rate_id: str, points: Sequence[tuple[datetime, datetime, Decimal]]
) -> int:
    """Replace the series between the first start and the last end with these intervals."""
    if not points:
        return 0
    first = min(start for start, _, _ in points)
    last = max(end for _, end, _ in points)
    await session.execute(
        delete(ElectricityPrice).where(
            col(ElectricityPrice.rate_id) == rate_id,
            col(ElectricityPrice.start) < last,
            col(ElectricityPrice.end) > first,
        )
    )
    for start, end, price in points:
        session.add(ElectricityPrice(rate_id=rate_id, start=start, end=end, price=str(price)))
    await session.flush()
    return len(points)


async def list_prices(
    session: AsyncSession, *, rate_id: str, start: datetime, end: datetime
) -> list[ElectricityPrice]:
    rows = await session.execute(
        select(ElectricityPrice)
        .where(
            col(ElectricityPrice.rate_id) == rate_id,
            col(ElectricityPrice.start) < end,
            col(ElectricityPrice.end) > start,
        )
        .order_by(col(ElectricityPrice.start))
    )
    return list(rows.scalars())


async def circuit_of(
    session: AsyncSession, *, charge_point_id: str, connector_id: int
) -> str | None:
    """The circuit a connector is on: as a member itself, else through its whole charger
    (connector 0; csms.core.circuits.member_for), or None."""
    place = (charge_point_id, connector_id)
    return (await circuits_of(session, [place]))[place]


# A connector's circuit (`circuit_of`), by (charger, connector); None: on no circuit.
Circuits = Mapping[tuple[str, int], str | None]


async def circuits_of(session: AsyncSession, places: Collection[tuple[str, int]]) -> Circuits:
    """The circuit each of these connectors is on (`circuit_of`), read with one query (a
    writer batch's Starts)."""
    if not places:
        return {}
    params = {"cps": list({charge_point_id for charge_point_id, _ in places})}
    rows = await session.execute(_select_members(), params)
    return circuits_from(places, [(cp, connector, circuit) for cp, connector, circuit in rows])


def circuits_from(
    places: Collection[tuple[str, int]], members: Sequence[tuple[str, int, str]]
) -> Circuits:
    """The circuit of each of these connectors, from the circuit members of their chargers
    (a connector's own, else its charger's as a whole, connector 0)."""
    found = {(cp, connector): circuit for cp, connector, circuit in members}
    return {
        (cp, connector): found.get((cp, connector)) or found.get((cp, 0))
        for cp, connector in places
    }


@cache
def _select_members() -> Select[Any]:
    # Built once: building a statement and its cache key costs more than running it.
    members = table_of(CircuitMember)
    return select(members.c.charge_point_id, members.c.connector_id, members.c.circuit_id).where(
        members.c.charge_point_id.in_(bindparam("cps", expanding=True))
    )


async def circuit_path(session: AsyncSession, circuit_id: str) -> list[str]:
    """The circuit and the circuits above it, nearest first, as the tree is now (a circuit
    deleted since is kept alone: its rate may still exist)."""
    path = [circuit_id]
    row = await session.get(Circuit, circuit_id)
    # The API refuses cycles (csms.core.circuits.tree_problem); `path` guards anyway.
    while row is not None and row.parent_id is not None and row.parent_id not in path:
        path.append(row.parent_id)
        row = await session.get(Circuit, row.parent_id)
    return path


async def rate_for(
    session: AsyncSession, *, candidates: Sequence[RatePlace], start: datetime, end: datetime
) -> RateFacts | None:
    """The most specific rate among `candidates` (csms.core.rates.choose_rate), with its
    uploaded prices for [start, end]; None when none of them has a rate."""
    if not candidates:
        return None
    rows = await session.execute(
        select(ElectricityRate)
        .where(
            or_(
                *(
                    and_(col(ElectricityRate.scope) == scope, col(ElectricityRate.target) == target)
                    for scope, target in candidates
                )
            )
        )
        # Two rates for one place: the first by id counts (read last, it is the one kept).
        .order_by(col(ElectricityRate.id).desc())
    )
    found = {(RateScope(row.scope), row.target): row for row in rows.scalars()}
    rate = choose_rate(candidates, found)
    if rate is None:
        return None
    points = await list_prices(session, rate_id=rate.id, start=start, end=end)
    return RateFacts(
        currency=rate.currency,
        zone=ZoneInfo(rate.time_zone),
        time_of_use=tuple(
            TimeOfUse(
                start=datetime.strptime(window["startTime"], "%H:%M").time(),
                end=datetime.strptime(window["endTime"], "%H:%M").time(),
                price=Decimal(str(window["price"])),
                days=frozenset(DayOfWeek(day) for day in window.get("dayOfWeek") or ()),
            )
            for window in rate.time_of_use
        ),
        points=tuple(
            PricePoint(start=p.start, end=p.end, price=Decimal(p.price))
            for p in points
            if p.start is not None and p.end is not None
        ),
    )
