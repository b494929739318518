"""Transactions: idempotent starts and stops, forced and implicit ends, and CDR marks.

Their samples (meter values) live in csms.store.samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.authorize import IdTagInfo
from csms.core.transactions import (
    FORCED_STOP_REASON,
    IMPLICIT_END_REASON,
    CdrStep,
    StartKey,
    StopRequest,
    TransactionFlag,
    ends_on_new_start,
    is_own_transaction,
    merge_flags,
    register_at_stop,
    stop_flags,
)
from csms.store import samples
from csms.store.commands import use_reservation
from csms.store.registry import authorize_id_tag
from csms.store.samples import list_meter_values as list_meter_values
from csms.store.samples import transaction_samples as transaction_samples
from csms.store.sql import insert_into, page, rowcount
from csms.store.tables import OPEN_FOR_THE_CHARGER, Reservation, Transaction, table_of

# `transaction_samples` and `list_meter_values` are also read as transactions.* (the API,
# the tariff flows): kept here under their old names since the samples moved out.


async def _locked(session: AsyncSession, transaction_id: int) -> Transaction | None:
    """The transaction, fresh and locked until commit (PostgreSQL; SQLite has one writer).

    Its flags are rewritten from what is read here, so no other node may change them between.
    """
    return await session.get(
        Transaction, transaction_id, with_for_update=True, populate_existing=True
    )


async def force_stop(session: AsyncSession, *, transaction_id: int, now: datetime) -> bool:
    """End a transaction in our data now (operator's force stop); True when it ended here.

    The charger's own StopTransaction may still come: `charger_stopped` stays false, so its
    values replace ours once, as for an implicitly ended transaction.
    """
    row = await _locked(session, transaction_id)
    if row is None or row.stop_timestamp is not None:
        return False
    await _end_here(
        session, row, at=now, reason=FORCED_STOP_REASON, flag=TransactionFlag.FORCED_STOP, now=now
    )
    return True


async def _end_here(
    session: AsyncSession,
    row: Transaction,
    *,
    at: datetime,
    reason: str,
    flag: TransactionFlag,
    now: datetime,
) -> None:
    """End an open transaction without the charger's Stop (forced, implicitly ended).

    Its energy is the last register read by `at`: readings after it do not count.
    """
    assert row.id is not None
    row.stop_timestamp = at
    row.stop_reason = reason
    row.flags = merge_flags(row.flags, [flag])
    row.updated_at = now
    await session.flush()
    await samples.flag_after_stop(session, transaction_id=row.id, stopped_at=at)
    stored = await samples.transaction_samples(session, row.id)
    register = register_at_stop(samples.samples_of(stored), stopped_at=at)
    row.last_register_wh = None if register is None else float(register)
    await session.flush()


@dataclass(frozen=True)
class StartOutcome:
    transaction_id: int
    id_tag_info: IdTagInfo
    created: bool
    # Reservations this start fulfilled ('done').
    reservations: list[Reservation] = field(default_factory=list)
    # Open transactions on the connector this start ended (flag implicitly_ended).
    ended: list[int] = field(default_factory=list)


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
        .on_conflict_do_nothing(
            index_elements=list(key_values), index_where=text(OPEN_FOR_THE_CHARGER)
        )
        .returning(table_of(Transaction).c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is None:
        # A repeat of the Start of a transaction the charger has not stopped: the same id.
        table = table_of(Transaction)
        existing = await session.execute(
            select(table.c.id).where(
                *(table.c[name] == value for name, value in key_values.items()),
                text(OPEN_FOR_THE_CHARGER),
            )
        )
        row_id = existing.scalar_one()
        return StartOutcome(transaction_id=int(row_id), id_tag_info=info, created=False)
    ended = await end_open_transactions(session, key=key, keep=inserted, now=now)
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
        transaction_id=inserted,
        id_tag_info=info,
        created=True,
        reservations=fulfilled,
        ended=ended,
    )


async def end_open_transactions(
    session: AsyncSession, *, key: StartKey, keep: int, now: datetime
) -> list[int]:
    """A Start on a connector with an open transaction means its Stop was lost: end it here."""
    result = await session.execute(
        select(Transaction)
        .where(
            col(Transaction.charge_point_id) == key.charge_point_id,
            col(Transaction.connector_id) == key.connector_id,
            col(Transaction.stop_timestamp).is_(None),
            col(Transaction.id) != keep,
        )
        .order_by(col(Transaction.id))
        .with_for_update()
    )
    ended: list[int] = []
    for previous in list(result.scalars()):
        if not ends_on_new_start(open_started_at=previous.start_timestamp, new_start=key):
            continue
        assert previous.id is not None
        await _end_here(
            session,
            previous,
            at=key.timestamp,
            reason=IMPLICIT_END_REASON,
            flag=TransactionFlag.IMPLICITLY_ENDED,
            now=now,
        )
        ended.append(previous.id)
    return ended


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
    row = await _locked(session, request.transaction_id)
    owner = row.charge_point_id if row is not None else None
    own = is_own_transaction(owner=owner, charge_point_id=request.charge_point_id)
    if row is not None and own:
        recorded = await _stop_known(session, row=row, request=request, now=now)
        return StopOutcome(id_tag_info=info, stopped=row.id if recorded else None)
    await _stop_orphan(session, request=request, now=now)
    return StopOutcome(id_tag_info=info, stopped=None)


async def record_cdrs(
    session: AsyncSession,
    row: Transaction,
    *,
    step: CdrStep,
    estimated_cdr: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Note on the transaction the CDRs its events carry (flags `cdr_*`).

    The caller holds the row's lock (it has just ended the transaction), so the flags it
    decided on are still the row's: of two nodes, only the one that ended it gets here.
    """
    if mark_cdrs(row, step=step, estimated_cdr=estimated_cdr, now=now):
        await session.flush()


def mark_cdrs(
    row: Transaction, *, step: CdrStep, estimated_cdr: dict[str, Any] | None, now: datetime
) -> bool:
    """`record_cdrs` on the row in memory (flushed with the session); True when it changed."""
    values = cdr_marks(row.flags, step=step, estimated_cdr=estimated_cdr, now=now)
    for name, value in values.items():
        setattr(row, name, value)
    return bool(values)


def cdr_marks(
    flags: list[str], *, step: CdrStep, estimated_cdr: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """What `mark_cdrs` sets on a row whose flags are `flags` (nothing for `CdrStep.NONE`)."""
    if step is CdrStep.NONE:
        return {}
    values: dict[str, Any] = {}
    if step is CdrStep.FIRST:
        new = [TransactionFlag.CDR_CREATED]
        if estimated_cdr is not None:
            new.append(TransactionFlag.CDR_ESTIMATED)
            values["estimated_cdr"] = estimated_cdr
    else:
        new = [TransactionFlag.CDR_CORRECTED]
    return values | {"flags": merge_flags(flags, new), "updated_at": now}


def stop_values(row: Transaction, *, request: StopRequest, now: datetime) -> dict[str, Any]:
    """What the charger's Stop sets on its transaction's row."""
    flags = stop_flags(
        meter_start=row.meter_start if row.meter_start is not None else request.meter_stop,
        meter_stop=request.meter_stop,
        started_at=row.start_timestamp,
        stopped=request.stopped,
    )
    return {
        "meter_stop": request.meter_stop,
        "stop_timestamp": request.stopped.value,
        "stop_reason": request.reason or "Local",
        "stop_id_tag": request.id_tag,
        "charger_stopped": True,
        "flags": merge_flags(row.flags, flags),
        "updated_at": now,
    }


async def _stop_known(
    session: AsyncSession, *, row: Transaction, request: StopRequest, now: datetime
) -> bool:
    # The conditional UPDATE is the guard: of two concurrent Stops (two processes), one wins.
    result = await session.execute(
        update(Transaction)
        .where(col(Transaction.id) == row.id, col(Transaction.charger_stopped).is_(False))
        .values(**stop_values(row, request=request, now=now))
        .execution_options(synchronize_session=False)
    )
    if not rowcount(result):
        return False
    assert row.id is not None
    await samples.insert_samples(
        session,
        charge_point_id=request.charge_point_id,
        connector_id=row.connector_id,
        transaction_id=row.id,
        samples=request.samples,
        now=now,
    )
    await samples.flag_after_stop(session, transaction_id=row.id, stopped_at=request.stopped.value)
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
        await samples.insert_samples(
            session,
            charge_point_id=request.charge_point_id,
            connector_id=0,
            transaction_id=inserted,
            samples=request.samples,
            now=now,
        )


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
