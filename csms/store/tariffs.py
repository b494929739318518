"""Tariffs (every version kept), tariff groups, assignments and how transactions are priced."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ARRAY,
    CompoundSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.money import from_units, to_units
from csms.store.db import unnest_rows
from csms.store.sql import page, rowcount
from csms.store.tables import (
    StatusNotification,
    TariffAssignment,
    TariffGroup,
    TariffRow,
    TariffVersion,
    Transaction,
    TransactionPricing,
    table_of,
)

# -- tariffs -------------------------------------------------------------------------------


async def put_tariff(
    session: AsyncSession, *, tariff_id: str, data: dict[str, Any], now: datetime
) -> tuple[bool, int]:
    """Store a new version of a tariff and make it current: (created, version)."""
    latest = (
        await session.execute(
            select(func.max(col(TariffVersion.version))).where(
                col(TariffVersion.tariff_id) == tariff_id
            )
        )
    ).scalar_one_or_none()
    version = (latest or 0) + 1
    session.add(TariffVersion(tariff_id=tariff_id, version=version, data=data, created_at=now))
    row = await session.get(TariffRow, tariff_id)
    created = row is None
    if row is None:
        row = TariffRow(id=tariff_id, version=version, data=data, last_updated=now)
        session.add(row)
    else:
        row.version = version
        row.data = data
        row.last_updated = now
    await session.flush()
    return created, version


async def get_tariff(session: AsyncSession, tariff_id: str) -> TariffRow | None:
    return await session.get(TariffRow, tariff_id)


async def get_tariff_version(
    session: AsyncSession, *, tariff_id: str, version: int
) -> dict[str, Any] | None:
    row = await session.get(TariffVersion, (tariff_id, version))
    return None if row is None else row.data


async def list_tariffs(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[TariffRow], int]:
    return await page(session, TariffRow, None, col(TariffRow.id), limit, offset)


async def delete_tariff(session: AsyncSession, *, tariff_id: str) -> bool:
    """Remove a tariff from use; its versions stay for the sessions priced with them."""
    await session.execute(
        delete(TariffAssignment).where(col(TariffAssignment.tariff_id) == tariff_id)
    )
    result = await session.execute(delete(TariffRow).where(col(TariffRow.id) == tariff_id))
    return bool(rowcount(result))


# -- groups and assignments ----------------------------------------------------------------


async def put_group(
    session: AsyncSession, *, group_id: str, name: str, tariff_id: str, now: datetime
) -> bool:
    row = await session.get(TariffGroup, group_id)
    created = row is None
    if row is None:
        row = TariffGroup(id=group_id, name=name, tariff_id=tariff_id, created_at=now)
        session.add(row)
    row.name = name
    row.tariff_id = tariff_id
    row.updated_at = now
    await session.flush()
    return created


async def get_group(session: AsyncSession, group_id: str) -> TariffGroup | None:
    return await session.get(TariffGroup, group_id)


async def list_groups(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[TariffGroup], int]:
    return await page(session, TariffGroup, None, col(TariffGroup.id), limit, offset)


async def delete_group(session: AsyncSession, *, group_id: str) -> bool:
    result = await session.execute(delete(TariffGroup).where(col(TariffGroup.id) == group_id))
    return bool(rowcount(result))


async def put_assignment(
    session: AsyncSession, *, scope: str, target: str, tariff_id: str, now: datetime
) -> bool:
    row = await session.get(TariffAssignment, (scope, target))
    created = row is None
    if row is None:
        row = TariffAssignment(scope=scope, target=target, tariff_id=tariff_id, updated_at=now)
        session.add(row)
    row.tariff_id = tariff_id
    row.updated_at = now
    await session.flush()
    return created


async def delete_assignment(session: AsyncSession, *, scope: str, target: str) -> bool:
    result = await session.execute(
        delete(TariffAssignment).where(
            col(TariffAssignment.scope) == scope, col(TariffAssignment.target) == target
        )
    )
    return bool(rowcount(result))


async def list_assignments(session: AsyncSession) -> list[TariffAssignment]:
    rows = await session.execute(
        select(TariffAssignment).order_by(col(TariffAssignment.scope), col(TariffAssignment.target))
    )
    return list(rows.scalars())


async def get_assignment(
    session: AsyncSession, *, scope: str, target: str
) -> TariffAssignment | None:
    return await session.get(TariffAssignment, (scope, target))


async def assigned_tariff(session: AsyncSession, *, scope: str, target: str) -> str | None:
    row = await session.get(TariffAssignment, (scope, target))
    return None if row is None else row.tariff_id


async def assignments_of(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], str | None]:
    """The tariff assigned at each (scope, target), None where there is none; one query."""
    if not keys:
        return {}
    if _dialect(session) == "postgresql":
        scopes, targets = zip(*keys, strict=True)
        params: dict[str, Any] = {"a_scope": list(scopes), "a_target": list(targets)}
        rows = await session.execute(_select_assignments_pg(), params)
    else:
        rows = await session.execute(_select_assignments(), {"keys": list(keys)})
    found: dict[tuple[str, str], str | None] = dict.fromkeys(keys)
    for scope, target, tariff_id in rows:
        found[scope, target] = tariff_id
    return found


@cache
def _select_assignments() -> Select[Any]:
    table = table_of(TariffAssignment)
    return select(table.c.scope, table.c.target, table.c.tariff_id).where(
        tuple_(table.c.scope, table.c.target).in_(bindparam("keys", expanding=True))
    )


@cache
def _select_assignments_pg() -> Select[Any]:
    """`_select_assignments` on PostgreSQL: the keys as two arrays (`unnest_rows`), one
    statement text whatever their number (see `_among`)."""
    table = table_of(TariffAssignment)
    keys = unnest_rows("k", {"scope": String, "target": String})
    return select(table.c.scope, table.c.target, table.c.tariff_id).join_from(
        keys, table, and_(table.c.scope == keys.c.scope, table.c.target == keys.c.target)
    )


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _among(column: Any, name: str, dialect: str) -> Any:
    """`column IN :name`, the values a list; on PostgreSQL `column = ANY(:name)`, one array
    parameter. An expanding IN is rendered again at every execution and its text differs
    with each number of values: asyncpg prepares a statement (a round trip and the
    server's parse) for each number its connection has not among its last 100 statements.
    As `transactions_bulk._among` (bench/analysis.md, P6 "I" and "J")."""
    if dialect == "postgresql":
        array: Any = bindparam(name, type_=ARRAY(column.type))
        return column == any_(array)
    values: Any = bindparam(name, expanding=True)
    return column.in_(values)


# -- transactions --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTariff:
    """The tariff version a transaction is priced with, and where it came from."""

    tariff_id: str
    version: int
    source: str
    data: dict[str, Any]


async def current_tariffs(
    session: AsyncSession, candidates: Sequence[tuple[str, str | None]]
) -> list[tuple[str, TariffRow]]:
    """The current version of each candidate (source, tariff id) that exists, in order."""
    found = []
    for source, tariff_id in candidates:
        if tariff_id is None:
            continue
        row = await session.get(TariffRow, tariff_id)
        if row is not None:
            found.append((source, row))
    return found


async def record_pricing(
    session: AsyncSession,
    *,
    transaction_id: int,
    resolved: ResolvedTariff,
    user_id: str | None,
    prepaid: bool,
    currency: str,
    time_zone: str,
    now: datetime,
    circuit_id: str | None = None,
) -> None:
    """Keep the tariff a transaction started with (once: a resent Start changes nothing),
    and the circuit its connector was on then."""
    if await session.get(TransactionPricing, transaction_id) is not None:
        return
    session.add(
        TransactionPricing(
            transaction_id=transaction_id,
            tariff_id=resolved.tariff_id,
            tariff_version=resolved.version,
            source=resolved.source,
            user_id=user_id,
            prepaid=prepaid,
            currency=currency,
            time_zone=time_zone,
            circuit_id=circuit_id,
            created_at=now,
        )
    )
    await session.flush()


async def record_circuit(
    session: AsyncSession, *, transaction_id: int, circuit_id: str, currency: str, now: datetime
) -> None:
    """Keep the circuit a transaction without a tariff started on (once), for the rate its
    energy is bought at (docs/tariffs.md, "Purchase cost and margin")."""
    if await session.get(TransactionPricing, transaction_id) is not None:
        return
    session.add(
        TransactionPricing(
            transaction_id=transaction_id, currency=currency, circuit_id=circuit_id, created_at=now
        )
    )
    await session.flush()


async def record_purchase(
    session: AsyncSession,
    *,
    transaction_id: int,
    purchase_cost: Decimal | None,
    currency: str,
    now: datetime,
) -> None:
    """What a stopped transaction without a tariff cost to buy (its latest CDR's); a row
    is made only for a cost, and a replacement CDR without one clears it."""
    row = await session.get(TransactionPricing, transaction_id)
    if row is None:
        if purchase_cost is None:
            return
        row = TransactionPricing(transaction_id=transaction_id, currency=currency, created_at=now)
        session.add(row)
    row.purchase_cost = None if purchase_cost is None else to_units(purchase_cost)
    row.priced_at = now
    await session.flush()


async def get_pricing(session: AsyncSession, transaction_id: int) -> TransactionPricing | None:
    return await session.get(TransactionPricing, transaction_id)


async def pricing_of(
    session: AsyncSession, transaction_ids: Sequence[int]
) -> dict[int, TransactionPricing]:
    if not transaction_ids:
        return {}
    stmt = _select_pricing(_dialect(session))
    rows = await session.scalars(stmt, {"ids": list(transaction_ids)})
    return {row.transaction_id: row for row in rows}


@cache
def _select_pricing(dialect: str) -> Select[TransactionPricing]:
    ids = _among(table_of(TransactionPricing).c.transaction_id, "ids", dialect)
    return select(TransactionPricing).where(ids)


async def record_cost(
    session: AsyncSession,
    *,
    transaction_id: int,
    excl: Decimal,
    incl: Decimal | None,
    purchase_cost: Decimal | None,
    parking_s: int,
    now: datetime,
) -> None:
    """The final cost of a stopped transaction (its CDR's)."""
    row = await session.get(TransactionPricing, transaction_id)
    if row is None:
        return
    row.cost_excl = to_units(excl)
    row.cost_incl = None if incl is None else to_units(incl)
    row.purchase_cost = None if purchase_cost is None else to_units(purchase_cost)
    row.parking_s = parking_s
    row.priced_at = now
    await session.flush()


async def claim_balance_stop(session: AsyncSession, *, transaction_id: int, reason: str) -> bool:
    """True once per transaction: the caller asks the charger to stop it."""
    row = await session.get(TransactionPricing, transaction_id)
    if row is None or row.stop_reason is not None:
        return False
    row.stop_reason = reason
    await session.flush()
    return True


def money(units: int | None) -> Decimal | None:
    return None if units is None else from_units(units)


async def connector_statuses(
    session: AsyncSession,
    *,
    charge_point_id: str,
    connector_id: int,
    start: datetime,
    stop: datetime,
) -> list[tuple[datetime, str]]:
    """The connector's statuses from the last one before `start` up to `stop`, in order."""
    where = (
        col(StatusNotification.charge_point_id) == charge_point_id,
        col(StatusNotification.connector_id) == connector_id,
    )
    order = (col(StatusNotification.timestamp), col(StatusNotification.id))
    before = await session.execute(
        select(StatusNotification)
        .where(*where, col(StatusNotification.timestamp) <= start)
        .order_by(*(column.desc() for column in order))
        .limit(1)
    )
    during = await session.execute(
        select(StatusNotification)
        .where(
            *where,
            col(StatusNotification.timestamp) > start,
            col(StatusNotification.timestamp) <= stop,
        )
        .order_by(*order)
    )
    rows = [*before.scalars(), *during.scalars()]
    return [(row.timestamp, row.status) for row in rows if row.timestamp is not None]


async def connector_statuses_of(
    session: AsyncSession, transaction_ids: Collection[int]
) -> dict[int, list[tuple[datetime, str]]]:
    """`connector_statuses` of many ended transactions, from their start to their stop as
    stored, with one query (a statement of one shape, whatever the number)."""
    found: dict[int, list[tuple[datetime, str]]] = {tid: [] for tid in transaction_ids}
    if not transaction_ids:
        return found
    stmt = _statuses_query(_dialect(session))
    rows = await session.execute(stmt, {"ids": list(transaction_ids)})
    for transaction_id, timestamp, status, _ in sorted(rows, key=itemgetter(0, 1, 3)):
        found[transaction_id].append((timestamp, status))
    return found


@cache
def _statuses_query(dialect: str) -> Select[Any] | CompoundSelect[Any]:
    tx = table_of(Transaction)
    sn = table_of(StatusNotification)
    earlier = sn.alias("earlier")
    # The connector's last status at the start, per transaction (connector_statuses' first).
    before = (
        select(earlier.c.id)
        .where(
            earlier.c.charge_point_id == tx.c.charge_point_id,
            earlier.c.connector_id == tx.c.connector_id,
            earlier.c.timestamp <= tx.c.start_timestamp,
        )
        .order_by(earlier.c.timestamp.desc(), earlier.c.id.desc())
        .limit(1)
        .correlate(tx)
        .scalar_subquery()
    )
    spans = (
        select(
            tx.c.id.label("tid"),
            tx.c.charge_point_id.label("cp"),
            tx.c.connector_id.label("conn"),
            tx.c.start_timestamp.label("started"),
            tx.c.stop_timestamp.label("stopped"),
            before.label("before_id"),
        )
        .where(_among(tx.c.id, "ids", dialect))
        .cte("spans")
    )
    columns = (spans.c.tid, sn.c.timestamp, sn.c.status, sn.c.id)
    same_connector = and_(sn.c.charge_point_id == spans.c.cp, sn.c.connector_id == spans.c.conn)
    during = and_(sn.c.timestamp > spans.c.started, sn.c.timestamp <= spans.c.stopped)
    if dialect != "postgresql":
        return (
            select(*columns)
            .join_from(spans, sn, same_connector)
            .where(or_(sn.c.id == spans.c.before_id, during))
        )
    # On PostgreSQL the status before and those during as two selects: in the one above it
    # read every status of the connector and ran the `before` subquery for each (its cost
    # grew with the connector's history), while the span alone is a range of
    # ix_status_notifications_cp_time (bench/analysis.md, P6 "J"). On SQLite, P6 measured
    # the two forms within the noise (the one above a little ahead): it keeps it.
    return union_all(
        select(*columns).join_from(spans, sn, sn.c.id == spans.c.before_id),
        select(*columns).join_from(spans, sn, and_(same_connector, during)),
    )
