"""Outbox pruning keeps what an enabled webhook subscription has not had, within bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.events import Event
from csms.store import outbox, webhooks
from csms.store.db import Database
from csms.store.tables import OutboxEvent

NOW = datetime(2026, 6, 1, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)


async def _events(database: Database, count: int, *, written: datetime) -> list[int]:
    """`count` events written at `written` and delivered to MQTT at once; their ids."""
    batch = [
        Event(id=uuid4(), charge_point_id="CP-P", type="meter.values", time=written, data={})
        for _ in range(count)
    ]
    await database.writer.submit(partial(outbox.add_events, events=batch, now=written))
    ids = (await database.read(_ids))[-count:]
    await database.writer.submit(partial(outbox.mark_delivered, ids=ids, now=written))
    return ids


async def _ids(session: AsyncSession) -> list[int]:
    result = await session.execute(select(col(OutboxEvent.id)).order_by(col(OutboxEvent.id)))
    return [found for found in result.scalars() if found is not None]


async def _subscription(database: Database, webhook_id: str, *, cursor: int, enabled: bool) -> None:
    values = {
        "url": "http://127.0.0.1/x",
        "event_types": ["*"],
        "enabled": enabled,
        "status": "active" if enabled else "disabled",
        "secret": "whsec_" + "A" * 32,
    }
    await database.writer.submit(
        partial(webhooks.put_subscription, subscription_id=webhook_id, values=values, now=NOW)
    )

    async def move(session: AsyncSession) -> None:
        row = await webhooks.get_subscription(session, webhook_id)
        assert row is not None
        row.cursor = cursor

    await database.writer.submit(move)


async def _prune(database: Database, *, hold: timedelta) -> list[int]:
    keep_after = await database.read(webhooks.oldest_needed)
    await database.writer.submit(
        partial(
            outbox.prune,
            delivered_before=NOW - timedelta(days=1),
            keep_after=keep_after,
            held_before=NOW - hold,
        )
    )
    return await database.read(_ids)


@pytest.mark.postgres
async def test_pruning_keeps_what_an_enabled_subscription_still_needs(database: Database) -> None:
    """Delivered rows past retention go, except those after an enabled subscription's
    cursor; a disabled subscription holds nothing."""
    ids = await _events(database, 6, written=WEEK_AGO)
    await _subscription(database, "behind", cursor=ids[2], enabled=True)
    await _subscription(database, "off", cursor=ids[0], enabled=False)
    assert await _prune(database, hold=timedelta(days=30)) == ids[3:]


@pytest.mark.postgres
async def test_a_subscription_holds_the_outbox_only_up_to_max_hold(database: Database) -> None:
    """Rows older than the hold are pruned even if a subscription never had them."""
    ids = await _events(database, 4, written=WEEK_AGO)
    await _subscription(database, "stuck", cursor=ids[0], enabled=True)
    assert await _prune(database, hold=timedelta(days=3)) == ids[-1:]  # the newest stays


async def test_without_subscriptions_pruning_is_by_retention_only(database: Database) -> None:
    """No enabled subscription: every delivered row past retention is pruned."""
    await _events(database, 3, written=WEEK_AGO)
    recent = await _events(database, 2, written=NOW)
    assert await _prune(database, hold=timedelta(days=3)) == recent


async def test_ids_keep_growing_when_pruning_would_empty_the_outbox(database: Database) -> None:
    """The newest event outlives retention, so a new event's id is past every id the
    cursors have seen (SQLite would otherwise start again at the largest id left plus one)."""
    old = await _events(database, 3, written=WEEK_AGO)
    assert await _prune(database, hold=timedelta(days=3)) == old[-1:]
    [new] = await _events(database, 1, written=NOW)
    assert new > old[-1]
