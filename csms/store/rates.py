"""Electricity rates: purchase prices per site (location) or circuit, and uploaded series."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.ocpi import DayOfWeek
from csms.core.rates import ElectricityRate as RateFacts
from csms.core.rates import PricePoint, TimeOfUse
from csms.store.sql import page, rowcount
from csms.store.tables import ElectricityPrice, ElectricityRate


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


async def rate_for(
    session: AsyncSession, *, scope: str, target: str, start: datetime, end: datetime
) -> RateFacts | None:
    """The rate of a site or circuit with its uploaded prices for [start, end], if any."""
    rows = await session.execute(
        select(ElectricityRate)
        .where(col(ElectricityRate.scope) == scope, col(ElectricityRate.target) == target)
        .order_by(col(ElectricityRate.id))
        .limit(1)
    )
    rate = rows.scalars().first()
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
