"""Transactions and their meter values: idempotent starts and stops, and sample links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Executable,
    Float,
    Integer,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.authorize import IdTagInfo
from csms.core.meter import Sample, latest_register
from csms.core.transactions import (
    FORCED_STOP_REASON,
    IMPLICIT_END_REASON,
    StartKey,
    StopRequest,
    TransactionFlag,
    ends_on_new_start,
    is_own_transaction,
    merge_flags,
    stop_flags,
)
from csms.store.commands import use_reservation
from csms.store.db import BulkWrite, StatementFactory
from csms.store.registry import authorize_id_tag
from csms.store.sql import dialect_insert, insert_into, page
from csms.store.tables import MeterValue, Reservation, Transaction, UTCDateTime, table_of


async def force_stop(session: AsyncSession, *, transaction_id: int, now: datetime) -> None:
    """End a transaction in our data now (operator's force stop).

    The charger's own StopTransaction may still come: `charger_stopped` stays false, so its
    values replace ours once, as for an implicitly ended transaction.
    """
    row = await session.get(Transaction, transaction_id)
    if row is None or row.stop_timestamp is not None:
        return
    row.stop_timestamp = now
    row.stop_reason = FORCED_STOP_REASON
    row.flags = merge_flags(row.flags, [TransactionFlag.FORCED_STOP])
    row.updated_at = now
    await session.flush()


@dataclass(frozen=True)
class StartOutcome:
    transaction_id: int
    id_tag_info: IdTagInfo
    created: bool
    # Reservations this start fulfilled ('done').
    reservations: list[Reservation] = field(default_factory=list)


async def start_transaction(
    session: AsyncSession,
    *,
    key: StartKey,
    reservation_id: int | None,
    flags: Sequence[TransactionFlag],
    now: datetime,
    id_tag_info: IdTagInfo | None = None,
) -> StartOutcome:
    """Record a StartTransaction once, however often it is sent.

    OCPP 1.6 §4.8 and errata §3.17: a transactionId goes back whatever the tag's status.
    `id_tag_info`, when given, is the decision made elsewhere (a roaming partner's token);
    otherwise the id-tags registry decides.
    """
    info = id_tag_info or await authorize_id_tag(session, id_tag=key.id_tag, now=now)
    key_values = {
        "charge_point_id": key.charge_point_id,
        "connector_id": key.connector_id,
        "id_tag": key.id_tag,
        "start_timestamp": key.timestamp,
        "meter_start": key.meter_start,
    }
    stmt = (
        insert_into(session, Transaction)
        .values(
            **key_values,
            start_id_tag_status=info.status.value,
            reservation_id=reservation_id,
            charger_stopped=False,
            flags=[flag.value for flag in flags],
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=list(key_values))
        .returning(table_of(Transaction).c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is None:
        table = table_of(Transaction)
        existing = await session.execute(
            select(table.c.id).where(
                *(table.c[name] == value for name, value in key_values.items())
            )
        )
        row_id = existing.scalar_one()
        return StartOutcome(transaction_id=int(row_id), id_tag_info=info, created=False)
    await _end_open_transactions(session, key=key, keep=inserted, now=now)
    fulfilled = await use_reservation(
        session,
        charge_point_id=key.charge_point_id,
        connector_id=key.connector_id,
        id_tag=key.id_tag,
        reservation_id=reservation_id,
        transaction_id=inserted,
        now=now,
    )
    return StartOutcome(
        transaction_id=inserted, id_tag_info=info, created=True, reservations=fulfilled
    )


async def _end_open_transactions(
    session: AsyncSession, *, key: StartKey, keep: int, now: datetime
) -> None:
    """A Start on a connector with an open transaction means its Stop was lost: end it here."""
    result = await session.execute(
        select(Transaction).where(
            col(Transaction.charge_point_id) == key.charge_point_id,
            col(Transaction.connector_id) == key.connector_id,
            col(Transaction.stop_timestamp).is_(None),
            col(Transaction.id) != keep,
        )
    )
    for previous in result.scalars():
        if not ends_on_new_start(open_started_at=previous.start_timestamp, new_start=key):
            continue
        previous.stop_timestamp = key.timestamp
        previous.stop_reason = IMPLICIT_END_REASON
        previous.flags = merge_flags(previous.flags, [TransactionFlag.IMPLICITLY_ENDED])
        previous.updated_at = now
    await session.flush()


@dataclass(frozen=True)
class StopOutcome:
    id_tag_info: IdTagInfo | None
    # The transaction this Stop ended, the first time the charger's stop is recorded.
    stopped: int | None


async def stop_transaction(
    session: AsyncSession, *, request: StopRequest, now: datetime
) -> StopOutcome:
    """Record one stop per transaction, whatever the charger resends.

    OCPP 1.6 §4.10: the CSMS cannot refuse a stop, so an unknown id (or -1, errata §3.18)
    is kept as an orphan transaction instead of being answered with an error.
    """
    info = (
        await authorize_id_tag(session, id_tag=request.id_tag, now=now)
        if request.id_tag is not None
        else None
    )
    row = await session.get(Transaction, request.transaction_id)
    owner = row.charge_point_id if row is not None else None
    own = is_own_transaction(owner=owner, charge_point_id=request.charge_point_id)
    if row is not None and own:
        recorded = await _stop_known(session, row=row, request=request, now=now)
        return StopOutcome(id_tag_info=info, stopped=row.id if recorded else None)
    await _stop_orphan(session, request=request, now=now)
    return StopOutcome(id_tag_info=info, stopped=None)


async def claim_cdr(session: AsyncSession, *, transaction_id: int, now: datetime) -> bool:
    """True once per transaction: the caller emits its one CDR (flag `cdr_created`)."""
    # The flag is the guard: of two nodes ending one transaction, one emits the CDR.
    row = await session.get(Transaction, transaction_id)
    if row is None or TransactionFlag.CDR_CREATED.value in row.flags:
        return False
    row.flags = merge_flags(row.flags, [TransactionFlag.CDR_CREATED])
    row.updated_at = now
    await session.flush()
    return True


async def transaction_samples(session: AsyncSession, transaction_id: int) -> list[MeterValue]:
    rows = await session.execute(
        select(MeterValue)
        .where(col(MeterValue.transaction_id) == transaction_id)
        .order_by(col(MeterValue.timestamp), col(MeterValue.id))
    )
    return list(rows.scalars())


async def _stop_known(
    session: AsyncSession, *, row: Transaction, request: StopRequest, now: datetime
) -> bool:
    flags = stop_flags(
        meter_start=row.meter_start if row.meter_start is not None else request.meter_stop,
        meter_stop=request.meter_stop,
        started_at=row.start_timestamp,
        stopped=request.stopped,
    )
    # The conditional UPDATE is the guard: of two concurrent Stops (two processes), one wins.
    result = await session.execute(
        update(Transaction)
        .where(col(Transaction.id) == row.id, col(Transaction.charger_stopped).is_(False))
        .values(
            meter_stop=request.meter_stop,
            stop_timestamp=request.stopped.value,
            stop_reason=request.reason or "Local",
            stop_id_tag=request.id_tag,
            charger_stopped=True,
            flags=merge_flags(row.flags, flags),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    assert row.id is not None
    await _insert_samples(
        session,
        charge_point_id=request.charge_point_id,
        connector_id=row.connector_id,
        transaction_id=row.id,
        samples=request.samples,
        now=now,
    )
    return True


async def _stop_orphan(session: AsyncSession, *, request: StopRequest, now: datetime) -> None:
    flags = stop_flags(
        meter_start=request.meter_stop,
        meter_stop=request.meter_stop,
        started_at=None,
        stopped=request.stopped,
    )
    stmt = (
        insert_into(session, Transaction)
        .values(
            charge_point_id=request.charge_point_id,
            connector_id=0,
            orphan_ref=request.transaction_id,
            meter_stop=request.meter_stop,
            stop_timestamp=request.stopped.value,
            stop_reason=request.reason or "Local",
            stop_id_tag=request.id_tag,
            charger_stopped=True,
            flags=merge_flags([], [TransactionFlag.ORPHAN_STOP, *flags]),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["charge_point_id", "orphan_ref", "stop_timestamp"])
        .returning(table_of(Transaction).c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is not None:
        await _insert_samples(
            session,
            charge_point_id=request.charge_point_id,
            connector_id=0,
            transaction_id=inserted,
            samples=request.samples,
            now=now,
        )


def _linked_transaction() -> Any:
    """The transaction a sample belongs to, decided in SQL so samples can be bulk-inserted.

    The charger's transactionId when it is this charger's; otherwise (unknown, 0 or -1) the
    transaction open on the connector at the sample's time (docs/ocpp.md, "Meter values").
    Connector 0 samples belong to none (OCPP 1.6 errata §3.16). Decided in SQL, not in core,
    so that a MeterValues stays one bulk INSERT whatever transaction its samples belong to.
    """
    tx = table_of(Transaction)
    cp: Any = bindparam("cp")
    connector = bindparam("conn", type_=Integer)
    at = bindparam("at", type_=UTCDateTime)
    claimed = (
        select(tx.c.id)
        .where(tx.c.id == bindparam("claimed", type_=BigInteger), tx.c.charge_point_id == cp)
        .scalar_subquery()
    )
    by_time = (
        select(tx.c.id)
        .where(
            tx.c.charge_point_id == cp,
            tx.c.connector_id == connector,
            connector > 0,
            tx.c.start_timestamp <= at,
            or_(tx.c.stop_timestamp.is_(None), tx.c.stop_timestamp >= at),
        )
        .order_by(tx.c.start_timestamp.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(claimed, by_time)


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
        **{name: bindparam(f"p_{name}") for name in _SAMPLE_FIELDS},
    )
    # A resent sample (same connector, instant, measurand, phase, location, context) is kept once.
    insert_once: Executable = stmt.on_conflict_do_nothing()
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


def meter_values(
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


async def _insert_samples(
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


async def get_transaction(session: AsyncSession, transaction_id: int) -> Transaction | None:
    return await session.get(Transaction, transaction_id)


async def list_transactions(
    session: AsyncSession,
    *,
    charge_point_id: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Transaction], int]:
    conditions: list[ColumnElement[bool]] = []
    if charge_point_id is not None:
        conditions.append(col(Transaction.charge_point_id) == charge_point_id)
    if active is True:
        conditions.append(col(Transaction.stop_timestamp).is_(None))
    elif active is False:
        conditions.append(col(Transaction.stop_timestamp).is_not(None))
    where = and_(*conditions) if conditions else None
    return await page(session, Transaction, where, col(Transaction.id), limit, offset)


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
