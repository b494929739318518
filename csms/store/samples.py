"""Meter values: samples stored in bulk, linked to their transaction in SQL, and read back.

A sample's transaction (and whether it falls after that transaction's stop) is decided in
SQL, so a MeterValues stays one bulk INSERT (csms.store.db.BulkWrite) whatever transaction
its samples belong to. The transactions themselves live in csms.store.transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Executable,
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.meter import Sample, latest_register
from csms.store.db import BulkWrite, StatementFactory, set_form, unnest_rows
from csms.store.sql import dialect_insert
from csms.store.tables import MeterValue, Transaction, UTCDateTime, table_of


async def transaction_samples(session: AsyncSession, transaction_id: int) -> list[MeterValue]:
    """The samples that count for a transaction: all but those after its stop."""
    rows = await session.execute(
        select(MeterValue)
        .where(
            col(MeterValue.transaction_id) == transaction_id,
            col(MeterValue.after_stop).is_(False),
        )
        .order_by(col(MeterValue.timestamp), col(MeterValue.id))
    )
    return list(rows.scalars())


def samples_of(rows: Sequence[MeterValue]) -> list[Sample]:
    """Stored samples as core samples."""
    return [
        Sample(
            timestamp=row.timestamp,
            value=row.value,
            measurand=row.measurand,
            unit=row.unit,
            context=row.context,
            location=row.location,
            phase=row.phase,
            format=row.format,
        )
        for row in rows
        if row.timestamp is not None
    ]


async def flag_after_stop(
    session: AsyncSession, *, transaction_id: int, stopped_at: datetime
) -> None:
    """Flag the transaction's samples timestamped after its stop, and only those.

    A stop csms decided (forced, implicitly ended) may be replaced by the charger's own,
    so samples between the two lose the flag again. Only changed rows are written.
    """
    await flag_after_stops(session, [(transaction_id, stopped_at)])


async def flag_after_stops(session: AsyncSession, stops: Sequence[tuple[int, datetime]]) -> None:
    """`flag_after_stop` for many (transaction id, stopped at): one executemany."""
    if not stops:
        return
    rows = [{"tid": transaction_id, "stopped_at": at} for transaction_id, at in stops]
    await (await session.connection()).execute(_after_stop_update(), rows)


@cache
def _after_stop_update() -> Executable:
    mv = table_of(MeterValue)
    at = bindparam("stopped_at", type_=UTCDateTime)
    after = mv.c.timestamp > at
    return (
        update(mv)
        .where(
            mv.c.transaction_id == bindparam("tid", type_=BigInteger),
            or_(
                and_(mv.c.after_stop.is_(False), after),
                and_(mv.c.after_stop.is_(True), mv.c.timestamp <= at),
            ),
        )
        .values(after_stop=after)
    )


@dataclass(frozen=True)
class _SampleKeys:
    """Where a sample's charger, connector, time and claimed transactionId come from: the
    statement's parameters (one row per execution), or a batch's rows (`unnest_rows`)."""

    cp: Any
    conn: Any
    at: Any
    claimed: Any


def _parameters() -> _SampleKeys:
    return _SampleKeys(
        cp=bindparam("cp"),
        conn=bindparam("conn", type_=Integer),
        at=bindparam("at", type_=UTCDateTime),
        claimed=bindparam("claimed", type_=BigInteger),
    )


def _linked_transaction(keys: _SampleKeys | None = None) -> Any:
    """The transaction a sample belongs to, decided in SQL so samples can be bulk-inserted.

    The charger's transactionId when it is this charger's; otherwise (unknown, 0 or -1) the
    transaction open on the connector at the sample's time (docs/ocpp.md, "Meter values").
    Connector 0 samples belong to none (OCPP 1.6 errata §3.16). Decided in SQL, not in core,
    so that a MeterValues stays one bulk INSERT whatever transaction its samples belong to.
    """
    k = _parameters() if keys is None else keys
    tx = table_of(Transaction)
    claimed = (
        select(tx.c.id)
        .where(tx.c.id == k.claimed, tx.c.charge_point_id == k.cp)
        # Only `transactions` is this subquery's own: a batch's rows come from outside.
        .correlate_except(tx)
        .scalar_subquery()
    )
    by_time = (
        select(tx.c.id)
        .where(
            tx.c.charge_point_id == k.cp,
            tx.c.connector_id == k.conn,
            k.conn > 0,
            tx.c.start_timestamp <= k.at,
            or_(tx.c.stop_timestamp.is_(None), tx.c.stop_timestamp >= k.at),
        )
        # A charger without a clock starts every transaction at the same instant: the newest.
        .order_by(tx.c.start_timestamp.desc(), tx.c.id.desc())
        .limit(1)
        .correlate_except(tx)
        .scalar_subquery()
    )
    return func.coalesce(claimed, by_time)


def _after_stop() -> Any:
    """Whether a sample is timestamped after the stop of the transaction it is linked to."""
    tx = table_of(Transaction)
    at = bindparam("at", type_=UTCDateTime)
    return exists().where(tx.c.id == _linked_transaction(), tx.c.stop_timestamp < at)


def _batch_links(columns: dict[str, Any]) -> tuple[Any, Any]:
    """A batch's rows (`unnest_rows`, alias `r`) and, beside each, its linked transaction
    (`l.tid`): the same rule as `_linked_transaction`, worked out once per row."""
    rows = unnest_rows(
        "r", {"cp": String, "conn": Integer, "at": UTCDateTime, "claimed": BigInteger, **columns}
    )
    keys = _SampleKeys(cp=rows.c.cp, conn=rows.c.conn, at=rows.c.at, claimed=rows.c.claimed)
    link = select(_linked_transaction(keys).label("tid")).lateral("l")
    return rows, link


_SAMPLE_FIELDS = ("value", "measurand", "unit", "context", "location", "phase", "format")


@cache
def _insert_sample(dialect: str) -> Executable:
    stmt = dialect_insert(dialect, table_of(MeterValue)).values(
        charge_point_id=bindparam("cp"),
        connector_id=bindparam("conn", type_=Integer),
        transaction_id=_linked_transaction(),
        claimed_transaction_id=bindparam("claimed", type_=BigInteger),
        timestamp=bindparam("at", type_=UTCDateTime),
        flags=bindparam("p_flags", type_=JSON),
        received_at=bindparam("now", type_=UTCDateTime),
        after_stop=_after_stop(),
        **{name: bindparam(f"p_{name}") for name in (*_SAMPLE_FIELDS, "value_digest")},
    )
    # An exact repeat (same connector, instant, measurand, phase, location, context, unit,
    # format and value) is kept once; a different value at the same instant is kept too.
    insert_once: Executable = stmt.on_conflict_do_nothing()
    return insert_once


@set_form(_insert_sample)
@cache
def _insert_samples(dialect: str) -> Executable | None:
    """`_insert_sample` for a batch's samples in one statement (PostgreSQL)."""
    if dialect != "postgresql":
        return None
    mv, tx = table_of(MeterValue), table_of(Transaction).alias("t")
    rows, link = _batch_links(
        {
            "p_flags": JSON,
            "now": UTCDateTime,
            **{f"p_{name}": Text for name in (*_SAMPLE_FIELDS, "value_digest")},
        }
    )
    c = rows.c
    values = {
        "charge_point_id": c.cp,
        "connector_id": c.conn,
        "transaction_id": link.c.tid,
        "claimed_transaction_id": c.claimed,
        "timestamp": c.at,
        "flags": c.p_flags,
        "received_at": c.now,
        # `_after_stop`: no linked transaction, or one not stopped, is not after its stop.
        "after_stop": func.coalesce(tx.c.stop_timestamp < c.at, false()),
        **{name: c[f"p_{name}"] for name in (*_SAMPLE_FIELDS, "value_digest")},
    }
    source = (
        select(*values.values())
        .select_from(rows.join(link, true()).outerjoin(tx, tx.c.id == link.c.tid))
        # Rows go in in the batch's order, as the executemany ran them: of two equal
        # samples the first is kept (ON CONFLICT DO NOTHING sees rows of its own statement).
        .order_by(c.ord)
    )
    insert_once: Executable = (
        dialect_insert(dialect, mv).from_select(list(values), source).on_conflict_do_nothing()
    )
    return insert_once


@cache
def _set_register(dialect: str) -> Executable:
    tx = table_of(Transaction)
    return (
        update(tx)
        .where(tx.c.id == _linked_transaction(), tx.c.stop_timestamp.is_(None))
        .values(
            last_register_wh=bindparam("wh", type_=Float),
            updated_at=bindparam("now", type_=UTCDateTime),
        )
    )


@set_form(_set_register)
@cache
def _set_registers(dialect: str) -> Executable | None:
    """`_set_register` for a batch in one statement (PostgreSQL): of two rows that reach
    the same transaction, the later one's register, as the executemany left it."""
    if dialect != "postgresql":
        return None
    tx = table_of(Transaction)
    rows, link = _batch_links({"wh": Float, "now": UTCDateTime})
    last = (
        select(link.c.tid, rows.c.wh, rows.c.now)
        .select_from(rows.join(link, true()))
        .where(link.c.tid.is_not(None))
        .order_by(link.c.tid, rows.c.ord.desc())
        .ext(distinct_on(link.c.tid))
        .subquery("u")
    )
    return (
        update(tx)
        .where(tx.c.id == last.c.tid, tx.c.stop_timestamp.is_(None))
        .values(last_register_wh=last.c.wh, updated_at=last.c.now)
    )


def store_samples(
    *,
    charge_point_id: str,
    connector_id: int,
    claimed_transaction_id: int | None,
    samples: Sequence[Sample],
    now: datetime,
) -> BulkWrite:
    """Store every sample (docs/ocpp.md: none is dropped) and the session's energy so far."""
    base = {"cp": charge_point_id, "conn": connector_id, "claimed": claimed_transaction_id}
    steps: list[tuple[StatementFactory, dict[str, Any]]] = [
        (_insert_sample, _sample_row(base, sample, now)) for sample in samples
    ]
    latest = latest_register(samples)
    if latest is not None:
        at, wh = latest
        steps.append((_set_register, {**base, "at": at, "wh": wh, "now": now}))
    return BulkWrite(steps=tuple(steps))


def _sample_row(base: dict[str, Any], sample: Sample, now: datetime) -> dict[str, Any]:
    # Spelled out (every sample of every MeterValues comes through here); the keys are
    # _insert_sample's parameters, p_ + each of _SAMPLE_FIELDS.
    return {
        **base,
        "p_value": sample.value,
        "p_value_digest": value_digest(sample.value),
        "p_measurand": sample.measurand,
        "p_unit": sample.unit,
        "p_context": sample.context,
        "p_location": sample.location,
        "p_phase": sample.phase,
        "p_format": sample.format,
        "at": sample.timestamp,
        "p_flags": list(sample.flags),
        "now": now,
    }


def value_digest(value: str) -> str:
    """The md5 of a sample's value (hex), as PostgreSQL's md5() computes it: a dedup key."""
    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


async def insert_samples(
    session: AsyncSession,
    *,
    charge_point_id: str,
    connector_id: int,
    transaction_id: int,
    samples: Sequence[Sample],
    now: datetime,
) -> None:
    """Insert a Stop's transactionData, linked to its (possibly orphan) transaction."""
    if not samples:
        return
    base = {"cp": charge_point_id, "conn": connector_id, "claimed": transaction_id}
    rows = [_sample_row(base, sample, now) for sample in samples]
    dialect = session.get_bind().dialect.name
    await (await session.connection()).execute(_insert_sample(dialect), rows)


async def list_meter_values(
    session: AsyncSession, *, transaction_id: int, limit: int, offset: int
) -> tuple[list[MeterValue], int]:
    where = col(MeterValue.transaction_id) == transaction_id
    order = (col(MeterValue.timestamp), col(MeterValue.id))
    total = (
        await session.execute(select(func.count()).select_from(MeterValue).where(where))
    ).scalar_one()
    rows = await session.execute(
        select(MeterValue).where(where).order_by(*order).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)
