"""Webhook subscriptions, their cursors into the outbox, the delivery log and replays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Executable,
    Select,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.store.db import BulkWrite, StatementFactory
from csms.store.outbox import PendingEvent
from csms.store.sql import page, rowcount
from csms.store.tables import (
    OutboxEvent,
    UTCDateTime,
    WebhookDelivery,
    WebhookReplay,
    WebhookSubscription,
    table_of,
)

# -- subscriptions -------------------------------------------------------------------------


async def get_subscription(
    session: AsyncSession, subscription_id: str
) -> WebhookSubscription | None:
    return await session.get(WebhookSubscription, subscription_id, populate_existing=True)


async def list_subscriptions(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[WebhookSubscription], int]:
    return await page(
        session, WebhookSubscription, None, col(WebhookSubscription.id), limit, offset
    )


async def enabled_subscription_ids(session: AsyncSession) -> list[str]:
    result = await session.execute(
        select(col(WebhookSubscription.id)).where(col(WebhookSubscription.enabled))
    )
    return list(result.scalars())


async def last_outbox_id(session: AsyncSession) -> int:
    """The newest outbox id, 0 for an empty outbox: where a new subscription starts."""
    newest = (await session.execute(select(func.max(col(OutboxEvent.id))))).scalar_one()
    return int(newest or 0)


async def put_subscription(
    session: AsyncSession, *, subscription_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a subscription; True when it was created (its cursor is the
    outbox's newest id then: it gets what happens from now on)."""
    row = await get_subscription(session, subscription_id)
    if row is None:
        cursor = await last_outbox_id(session)
        session.add(
            WebhookSubscription(
                id=subscription_id, cursor=cursor, created_at=now, updated_at=now, **values
            )
        )
        await session.flush()
        return True
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now
    await session.flush()
    return False


async def delete_subscription(session: AsyncSession, *, subscription_id: str) -> bool:
    """Remove a subscription, its delivery log and its replays; False when there was none."""
    result = await session.execute(
        delete(WebhookSubscription).where(col(WebhookSubscription.id) == subscription_id)
    )
    if not rowcount(result):
        return False
    await session.execute(
        delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription_id)
    )
    await session.execute(
        delete(WebhookReplay).where(col(WebhookReplay.subscription_id) == subscription_id)
    )
    return True


async def set_status(
    session: AsyncSession,
    *,
    subscription_id: str,
    status: str,
    reason: str | None,
    now: datetime,
    enabled: bool | None = None,
) -> WebhookSubscription | None:
    """Set a subscription's status; None when it is gone."""
    row = await get_subscription(session, subscription_id)
    if row is None:
        return None
    if row.status != status:
        row.failing_since = now if status == "failing" else None
    row.status = status
    row.status_reason = reason
    if enabled is not None:
        row.enabled = enabled
    row.updated_at = now
    await session.flush()
    return row


@cache
def _advance_cursor(dialect: str) -> Executable:
    table = table_of(WebhookSubscription)
    return (
        update(table)
        .where(table.c.id == bindparam("sid"), table.c.cursor < bindparam("upto"))
        .values(cursor=bindparam("upto"))
    )


def advance_cursor(*, subscription_id: str, upto: int) -> tuple[StatementFactory, dict[str, Any]]:
    """A bulk step: the subscription has had every event up to outbox id `upto`."""
    return _advance_cursor, {"sid": subscription_id, "upto": upto}


# -- the outbox as a subscription reads it -------------------------------------------------


def _select_events() -> Select[Any]:
    table = table_of(OutboxEvent)
    return select(
        table.c.id,
        table.c.event_id,
        table.c.charge_point_id,
        table.c.type,
        table.c.subject,
        table.c.time,
        # The JSON text as stored, spliced into the body without parsing (as the relay does).
        cast(table.c.data, Text),
        table.c.created_at,
    )


@cache
def select_after() -> Select[Any]:
    """Outbox rows with id > `after`, oldest first, at most `limit`, delivered to the broker
    or not (csms/store/webhooks_feed.py runs it)."""
    table = table_of(OutboxEvent)
    return (
        _select_events()
        .where(table.c.id > bindparam("after"))
        .order_by(table.c.id)
        .limit(bindparam("limit"))
    )


async def events_between(
    session: AsyncSession, *, after: int, last: int, limit: int
) -> list[PendingEvent]:
    """Outbox rows with `after` < id <= `last`, oldest first."""
    table = table_of(OutboxEvent)
    query = (
        _select_events()
        .where(table.c.id > after, table.c.id <= last)
        .order_by(table.c.id)
        .limit(limit)
    )
    return [PendingEvent(*row) for row in await session.execute(query)]


async def outbox_range(
    session: AsyncSession, *, recorded_from: datetime, recorded_to: datetime
) -> tuple[int, int, int] | None:
    """(first id, last id, count) of the outbox rows recorded in [from, to), or None."""
    query = select(
        func.min(col(OutboxEvent.id)), func.max(col(OutboxEvent.id)), func.count()
    ).where(col(OutboxEvent.created_at) >= recorded_from, col(OutboxEvent.created_at) < recorded_to)
    first, last, count = (await session.execute(query)).one()
    if first is None or last is None:
        return None
    return int(first), int(last), int(count)


async def outbox_id_of(session: AsyncSession, event_id: str) -> int | None:
    """The outbox id of a CloudEvent id still in the outbox."""
    query = select(col(OutboxEvent.id)).where(col(OutboxEvent.event_id) == event_id)
    found = (await session.execute(query)).scalar_one_or_none()
    return None if found is None else int(found)


async def oldest_needed(session: AsyncSession) -> int | None:
    """The smallest cursor of the enabled subscriptions: rows after it are still wanted."""
    query = select(func.min(col(WebhookSubscription.cursor))).where(
        col(WebhookSubscription.enabled)
    )
    found = (await session.execute(query)).scalar_one()
    return None if found is None else int(found)


# -- the delivery log ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as the log keeps it."""

    subscription_id: str
    outbox_id: int
    event_id: str
    event_type: str
    charge_point_id: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    response_body: str | None
    replay: bool
    attempted_at: datetime


@cache
def _insert_attempt(dialect: str) -> Executable:
    return insert(table_of(WebhookDelivery)).values(
        subscription_id=bindparam("sid"),
        outbox_id=bindparam("outbox_id"),
        event_id=bindparam("event_id"),
        event_type=bindparam("event_type"),
        charge_point_id=bindparam("cp"),
        attempt=bindparam("attempt"),
        status_code=bindparam("status_code"),
        error=bindparam("error"),
        latency_ms=bindparam("latency_ms"),
        response_body=bindparam("response_body"),
        replay=bindparam("replay"),
        attempted_at=bindparam("attempted_at", type_=UTCDateTime),
    )


def attempt_step(attempt: Attempt) -> tuple[StatementFactory, dict[str, Any]]:
    """A bulk step that logs an attempt."""
    return _insert_attempt, {
        "sid": attempt.subscription_id,
        "outbox_id": attempt.outbox_id,
        "event_id": attempt.event_id,
        "event_type": attempt.event_type,
        "cp": attempt.charge_point_id,
        "attempt": attempt.attempt,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
        "response_body": attempt.response_body,
        "replay": attempt.replay,
        "attempted_at": attempt.attempted_at,
    }


def progress(*, subscription_id: str, attempts: Sequence[Attempt], upto: int | None) -> BulkWrite:
    """Log attempts and, when given, advance the cursor: one commit."""
    steps = [attempt_step(attempt) for attempt in attempts]
    if upto is not None:
        steps.append(advance_cursor(subscription_id=subscription_id, upto=upto))
    return BulkWrite(steps=tuple(steps))


async def list_deliveries(
    session: AsyncSession, *, subscription_id: str, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """A subscription's attempts, newest first."""
    return await page(
        session,
        WebhookDelivery,
        col(WebhookDelivery.subscription_id) == subscription_id,
        col(WebhookDelivery.id).desc(),
        limit,
        offset,
    )


async def get_delivery(
    session: AsyncSession, *, subscription_id: str, delivery_id: int
) -> WebhookDelivery | None:
    row = await session.get(WebhookDelivery, delivery_id)
    return row if row is not None and row.subscription_id == subscription_id else None


async def prune_log(session: AsyncSession, *, before: datetime) -> int:
    """Delete attempts made before the time; returns how many."""
    result = await session.execute(
        delete(WebhookDelivery).where(col(WebhookDelivery.attempted_at) < before)
    )
    return rowcount(result)


# -- replays -------------------------------------------------------------------------------


async def add_replay(
    session: AsyncSession, *, subscription_id: str, first_id: int, last_id: int, now: datetime
) -> int:
    row = WebhookReplay(
        subscription_id=subscription_id, first_id=first_id, last_id=last_id, created_at=now
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    return row.id


async def pending_replays(session: AsyncSession, subscription_id: str) -> list[WebhookReplay]:
    result = await session.execute(
        select(WebhookReplay)
        .where(col(WebhookReplay.subscription_id) == subscription_id)
        .order_by(col(WebhookReplay.id))
    )
    return list(result.scalars())


async def finish_replay(
    session: AsyncSession, *, replay_id: int, done_through: int, last_id: int
) -> None:
    """Record a replay's progress: the row is removed once it reached its last id."""
    if done_through >= last_id:
        await session.execute(delete(WebhookReplay).where(col(WebhookReplay.id) == replay_id))
        return
    await session.execute(
        update(WebhookReplay)
        .where(col(WebhookReplay.id) == replay_id)
        .values(first_id=done_through + 1)
    )
