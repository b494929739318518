"""The transactional outbox: events written with their change, read back by the relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Executable,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.clock import as_utc
from csms.core.cluster import slot_of
from csms.core.events import Event
from csms.store.db import BulkWrite, StatementFactory, execute_many, set_form, unnest_rows
from csms.store.tables import OutboxEvent, UTCDateTime, table_of


@cache
def _insert_event(dialect: str) -> Executable:
    return insert(table_of(OutboxEvent)).values(
        event_id=bindparam("event_id"),
        charge_point_id=bindparam("cp"),
        type=bindparam("p_type"),
        subject=bindparam("p_subject"),
        time=bindparam("p_time", type_=UTCDateTime),
        data=bindparam("p_data", type_=JSON),
        created_at=bindparam("now", type_=UTCDateTime),
        slot=bindparam("p_slot"),
        # Given, not left to the column's default: a Python-side default is computed by
        # SQLAlchemy for every row (insert_prefetch), which kept this insert off the compiled
        # driver path (`execute_many`, `_Prepared`): on SQLite, where it has no set form, its
        # rows took twice a sample's time.
        relay_state=0,
    )


@set_form(_insert_event)
@cache
def _insert_events(dialect: str) -> Executable | None:
    """`_insert_event` for a batch's events in one statement (PostgreSQL).

    The relay reads the outbox in `id` order, and a charger's events must keep theirs
    (csms.events.relay): the ids are drawn in the batch's order, as the executemany drew
    them, since the rows are inserted sorted by their place in it.
    """
    if dialect != "postgresql":
        return None
    rows = unnest_rows(
        "r",
        {
            "event_id": String,
            "cp": String,
            "p_type": String,
            "p_subject": String,
            "p_time": UTCDateTime,
            "p_data": JSON,
            "now": UTCDateTime,
            "p_slot": Integer,
        },
    )
    c = rows.c
    values = {
        "event_id": c.event_id,
        "charge_point_id": c.cp,
        "type": c.p_type,
        "subject": c.p_subject,
        "time": c.p_time,
        "data": c.p_data,
        "created_at": c.now,
        "slot": c.p_slot,
        "relay_state": literal(0),
    }
    source = select(*values.values()).select_from(rows).order_by(c.ord)
    return insert(table_of(OutboxEvent)).from_select(list(values), source)


def event_step(event: Event, *, now: datetime) -> tuple[StatementFactory, dict[str, Any]]:
    """The outbox insert for an event, as a step of a bulk write."""
    return _insert_event, {
        "event_id": str(event.id),
        "cp": event.charge_point_id,
        "p_type": event.type,
        "p_subject": event.subject or event.charge_point_id,
        "p_time": event.time,
        "p_data": event.data,
        "now": now,
        "p_slot": slot_of(event.charge_point_id),
    }


def with_events(write: BulkWrite, events: Sequence[Event], *, now: datetime) -> BulkWrite:
    """A bulk write that also puts its events in the outbox, so both commit together."""
    return BulkWrite(steps=write.steps + tuple(event_step(event, now=now) for event in events))


async def add_events(session: AsyncSession, events: Sequence[Event], *, now: datetime) -> None:
    """Write events from a job, in the job's transaction."""
    if not events:
        return
    rows = [event_step(event, now=now)[1] for event in events]
    await execute_many(await session.connection(), _insert_event, rows)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An undelivered outbox row as the relay needs it; `data` is the stored JSON text."""

    id: int
    event_id: str
    charge_point_id: str
    type: str
    subject: str
    time: datetime
    data: str
    # When the event was committed (the relay's lag is measured from it).
    created_at: datetime


@cache
def _select_pending() -> Select[Any]:
    table = table_of(OutboxEvent)
    return (
        select(
            table.c.id,
            table.c.event_id,
            table.c.charge_point_id,
            table.c.type,
            table.c.subject,
            table.c.time,
            # The JSON text as stored: the relay puts it in the envelope without parsing it.
            cast(table.c.data, Text),
            table.c.created_at,
        )
        .where(table.c.delivered_at.is_(None))
        .order_by(table.c.id)
        .limit(bindparam("limit"))
    )


async def pending(session: AsyncSession, *, limit: int) -> list[PendingEvent]:
    """Undelivered events, oldest first."""
    result = await session.execute(_select_pending(), {"limit": limit})
    return [PendingEvent(*row) for row in result]


@cache
def _mark_delivered(dialect: str) -> Executable:
    table = table_of(OutboxEvent)
    # The ids as one parameter, not an IN list of one parameter each: the statement's text is
    # the same whatever their number, so it is prepared once (PostgreSQL) or found in the
    # statement cache (SQLite), instead of parsed and planned again for each length.
    ids: Any = bindparam("ids", type_=ARRAY(BigInteger) if dialect == "postgresql" else Text)
    listed = (
        table.c.id == func.any(ids)
        if dialect == "postgresql"
        else table.c.id.in_(select(column("value")).select_from(func.json_each(ids)))
    )
    return update(table).where(listed).values(delivered_at=bindparam("now", type_=UTCDateTime))


async def mark_delivered(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    """Mark the events delivered: one statement of the same text for any number of ids."""
    dialect = session.get_bind().dialect.name
    listed: Any = list(ids) if dialect == "postgresql" else orjson.dumps(list(ids)).decode()
    # Core, not ORM: no identity-map bookkeeping for hundreds of ids per pass.
    await session.execute(_mark_delivered(dialect), {"ids": listed, "now": now})


async def prune(
    session: AsyncSession,
    *,
    delivered_before: datetime,
    keep_after: int | None = None,
    held_before: datetime | None = None,
) -> int:
    """Delete events delivered before the time, but never the newest; returns how many.

    Rows after `keep_after` (a webhook subscription has not had them yet) are kept unless
    they were written before `held_before` (docs/webhooks.md, "The outbox and pruning").
    """
    query = delete(OutboxEvent).where(col(OutboxEvent.delivered_at) < delivered_before)
    # The newest event stays, whatever its age. On SQLite the id is the rowid, and a new row
    # gets the largest rowid in the table plus one (https://sqlite.org/autoinc.html): an
    # emptied outbox would hand out ids again that the webhook cursors and the OCPI feed,
    # which follow ids (docs/webhooks.md), have already passed, and they would skip events.
    newest = select(func.max(col(OutboxEvent.id))).scalar_subquery()
    query = query.where(col(OutboxEvent.id) < newest)
    if keep_after is not None:
        wanted = col(OutboxEvent.id) > keep_after
        if held_before is not None:
            wanted = wanted & (col(OutboxEvent.created_at) >= held_before)
        query = query.where(~wanted)
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


async def backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many events wait, and since when the oldest."""
    row = (
        await session.execute(
            select(func.count(), func.min(col(OutboxEvent.created_at))).where(
                col(OutboxEvent.delivered_at).is_(None)
            )
        )
    ).one()
    count, oldest = row
    return int(count), None if oldest is None else as_utc(oldest)
