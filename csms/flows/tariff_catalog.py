"""The operator's tariffs as they change: each change and its `tariff.updated` event are
written together, so roaming partners get every change from the outbox (docs/ocpi.md,
"Tariffs")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.events import build
from csms.store import outbox, tariffs


async def put_tariff(
    session: AsyncSession, *, tariff_id: str, data: dict[str, Any], now: datetime
) -> bool:
    """Store a new version of a tariff (inside a write) and announce it; True when new."""
    created, _ = await tariffs.put_tariff(session, tariff_id=tariff_id, data=data, now=now)
    await outbox.add_events(session, [build.tariff_updated(tariff_id, data, at=now)], now=now)
    return created


async def delete_tariff(session: AsyncSession, *, tariff_id: str, now: datetime) -> bool:
    """Remove a tariff (inside a write) and announce it; False when there was none."""
    if not await tariffs.delete_tariff(session, tariff_id=tariff_id):
        return False
    await outbox.add_events(session, [build.tariff_updated(tariff_id, None, at=now)], now=now)
    return True
