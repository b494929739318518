"""Transactions of many chargers at once: the Starts and Stops of one writer batch, set-based.

The writer runs a batch's StartTransactions (and StopTransactions) as one group
(csms.store.db.GroupJob). What each would read on its own (its id tag, whether its
connector has an open transaction, whether its charger has a reservation, ...) is read here
once for the group. The one-by-one functions of csms.store.transactions stay the reference:
these give the same rows, and what is rare (a repeated Start, a reservation, a lost Stop)
still goes through them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ARRAY,
    Executable,
    Integer,
    Select,
    String,
    Text,
    all_,
    any_,
    bindparam,
    cast,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel

from csms.core.authorize import IdTagInfo
from csms.core.charging import ReservationStatus
from csms.core.meter import Sample
from csms.core.session import SESSION_MEASURANDS
from csms.core.transactions import CdrStep, StartKey, StopRequest, TransactionFlag, cdr_step
from csms.store.commands import use_reservation
from csms.store.db import unnest_rows
from csms.store.tables import (
    OPEN_FOR_THE_CHARGER,
    ChargePoint,
    CircuitMember,
    IdTag,
    Location,
    MeterValue,
    Reservation,
    Transaction,
    table_of,
)
from csms.store.transactions import (
    StartOutcome,
    cdr_marks,
    end_open_transactions,
    stop_values,
)

_Row = TypeVar("_Row", bound=SQLModel)


async def id_tags(session: AsyncSession, tags: Collection[str]) -> dict[str, IdTag]:
    """The id tags among `tags` that exist, read with one query. While the caller holds the
    answer, a `session.get` of one of them costs no query (the identity map is weak)."""
    return await _by_key(session, IdTag, "id_tag", tags)


async def _by_key(
    session: AsyncSession, model: type[_Row], key: str, keys: Collection[str]
) -> dict[str, _Row]:
    """The rows of `model` whose `key` is among `keys` (those that exist), with one query."""
    if not keys:
        return {}
    stmt = _select_by_key(model, key, _dialect(session))
    rows = await session.scalars(stmt, {"keys": list(keys)})
    return {getattr(row, key): row for row in rows}


# The group's queries are built once: building a statement and its cache key costs more
# than running it on SQLite (about 125 µs of 200).


@cache
def _select_by_key(model: type[Any], key: str, dialect: str) -> Select[Any]:
    return select(model).where(_among(table_of(model).c[key], "keys", dialect))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _among(column: Any, name: str, dialect: str, *, negate: bool = False) -> Any:
    """`column IN :name` (`NOT IN` with `negate`), the values a list. On PostgreSQL
    `column = ANY(:name)` (`<> ALL`), one array parameter: the statement's text is the same
    whatever the number of values. An expanding IN is rendered again at every execution
    (SQLAlchemy's post-compile step), and its text differs with each number of values, so
    asyncpg prepares a statement (a round trip and the server's parse) for each number the
    connection has not seen among its last 100 statements (SQLAlchemy's
    `prepared_statement_cache_size`)."""
    if dialect == "postgresql":
        array: Any = bindparam(name, type_=ARRAY(column.type))
        return column != all_(array) if negate else column == any_(array)
    values: Any = bindparam(name, expanding=True)
    return column.not_in(values) if negate else column.in_(values)


# -- starts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartInsert:
    """A Start to insert with others: its key, and what its row records."""

    key: StartKey
    reservation_id: int | None
    flags: Sequence[TransactionFlag]
    info: IdTagInfo
    now: datetime


_START_KEY = ["charge_point_id", "connector_id", "id_tag", "start_timestamp", "meter_start"]
# What `insert_starts` gives each row, each a parameter `<column>_<n>` for the n-th row.
_START_COLUMNS = (
    *_START_KEY,
    "start_id_tag_status",
    "reservation_id",
    "charger_stopped",
    "flags",
    "created_at",
    "updated_at",
)


# The dialects without a driver, to write the insert as SQL text with `:name` parameters,
# and the casts PostgreSQL's writes after some (`:flags_0::JSON`): text() would not read
# those as parameters, and the driver's dialect writes its own.
_NAMED: dict[str, Any] = {
    "postgresql": PGDialect(paramstyle="named"),  # type: ignore[no-untyped-call]
    "sqlite": SQLiteDialect(paramstyle="named"),
}
_CAST = re.compile(r"(:\w+)::\w+")


@lru_cache(maxsize=256)
def _insert_starts(dialect: str, count: int) -> Executable:
    """The insert of `count` Starts, built once per number of rows (a batch's Starts are
    few distinct counts).

    SQLAlchemy gives a multi-row VALUES no cache key: it compiled this insert again at
    every execution, about 0.1 ms a row (3.5-4 % of csms's CPU under P6). Written once as
    SQL text, its parameters typed as their columns (their values converted as before) and
    its result as the table's columns, it is an ordinary cached statement.
    """
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table = table_of(Transaction)
    rows: list[dict[str, Any]] = [
        {name: bindparam(f"{name}_{n}") for name in _START_COLUMNS} for n in range(count)
    ]
    insert = (
        module.insert(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=_START_KEY, index_where=text(OPEN_FOR_THE_CHARGER))
        .returning(*table.c)
    )
    sql = _CAST.sub(r"\1", insert.compile(dialect=_NAMED[dialect]).string)
    typed = [
        bindparam(f"{name}_{n}", type_=table.c[name].type)
        for n in range(count)
        for name in _START_COLUMNS
    ]
    textual = text(sql).bindparams(*typed).columns(*table.c)
    # The rows as the session's objects (ORM from a Core statement: no ORM bulk insert).
    stmt: Executable = select(Transaction).from_statement(textual)
    return stmt


async def insert_starts(
    session: AsyncSession, starts: Sequence[StartInsert]
) -> dict[tuple[str, int], Transaction]:
    """Insert the transactions of many Starts with one statement; the rows created (they
    stay in the session), by (charger, connector).

    A Start whose key is open already (a repeat, OCPP 1.6 §4.8) creates nothing and is
    missing from the answer. The Starts must be of distinct (charger, connector) pairs.
    """
    if not starts:
        return {}
    params: dict[str, Any] = {}
    for n, start in enumerate(starts):
        values = {
            "charge_point_id": start.key.charge_point_id,
            "connector_id": start.key.connector_id,
            "id_tag": start.key.id_tag,
            "start_timestamp": start.key.timestamp,
            "meter_start": start.key.meter_start,
            "start_id_tag_status": start.info.status.value,
            "reservation_id": start.reservation_id,
            "charger_stopped": False,
            "flags": [flag.value for flag in start.flags],
            "created_at": start.now,
            "updated_at": start.now,
        }
        params.update((f"{name}_{n}", value) for name, value in values.items())
    stmt = _insert_starts(session.get_bind().dialect.name, len(starts))
    rows = (await session.scalars(stmt, params)).all()
    return {(row.charge_point_id, row.connector_id): row for row in rows}


@dataclass(frozen=True)
class StartChecks:
    """What a group's Starts check after their insert, read with one statement
    (`start_checks`): their chargers' open transactions, active reservations and circuit
    members."""

    # (charger, connector) with an open transaction other than the group's own.
    open_pairs: set[tuple[str, int]]
    # Chargers with an active reservation.
    reserved: set[str]
    # (charger, connector, circuit) of the chargers' circuit members (`rates.circuits_from`).
    members: list[tuple[str, int, str]]


_OPEN, _RESERVED, _MEMBER = 0, 1, 2


async def start_checks(
    session: AsyncSession, *, charge_point_ids: Collection[str], keep: Collection[int]
) -> StartChecks:
    """The (charger, connector) pairs of these chargers with an open transaction not in
    `keep`, those of them with an active reservation (a Start there may fulfil it) and
    their circuit members, in one statement: three reads of a few rows each cost three
    round trips, on PostgreSQL about as much as the group's insert."""
    checks = StartChecks(open_pairs=set(), reserved=set(), members=[])
    if not charge_point_ids:
        return checks
    params = {"cps": list(charge_point_ids), "keep": list(keep)}
    stmt = _select_start_checks(_dialect(session))
    for kind, cp, connector, circuit in await session.execute(stmt, params):
        if kind == _OPEN:
            checks.open_pairs.add((cp, connector))
        elif kind == _RESERVED:
            checks.reserved.add(cp)
        else:
            checks.members.append((cp, connector, circuit))
    return checks


@cache
def _select_start_checks(dialect: str) -> Executable:
    tx = table_of(Transaction)
    reservations = table_of(Reservation)
    members = table_of(CircuitMember)
    no_circuit = cast(null(), String)
    return union_all(
        select(literal(_OPEN), tx.c.charge_point_id, tx.c.connector_id, no_circuit).where(
            _among(tx.c.charge_point_id, "cps", dialect),
            tx.c.stop_timestamp.is_(None),
            _among(tx.c.id, "keep", dialect, negate=True),
        ),
        select(
            literal(_RESERVED), reservations.c.charge_point_id, cast(null(), Integer), no_circuit
        )
        .where(
            _among(reservations.c.charge_point_id, "cps", dialect),
            reservations.c.status == ReservationStatus.ACTIVE,
        )
        .distinct(),
        select(
            literal(_MEMBER),
            members.c.charge_point_id,
            members.c.connector_id,
            members.c.circuit_id,
        ).where(_among(members.c.charge_point_id, "cps", dialect)),
    )


async def complete_start(
    session: AsyncSession,
    *,
    start: StartInsert,
    row: Transaction,
    open_elsewhere: bool,
    reserved: bool,
) -> StartOutcome:
    """What follows the insert of a Start, as `transactions.start_transaction` does it: the
    transactions it ends and the reservations it fulfils, each looked for only where
    `start_checks` found one."""
    assert row.id is not None
    ended = (
        await end_open_transactions(session, key=start.key, keep=row.id, now=start.now)
        if open_elsewhere
        else []
    )
    fulfilled = (
        await use_reservation(
            session,
            charge_point_id=start.key.charge_point_id,
            connector_id=start.key.connector_id,
            id_tag=start.key.id_tag,
            reservation_id=start.reservation_id,
            transaction_id=row.id,
            now=start.now,
        )
        if reserved
        else []
    )
    return StartOutcome(
        transaction_id=row.id,
        id_tag_info=start.info,
        created=True,
        reservations=fulfilled,
        ended=ended,
    )


# -- stops ---------------------------------------------------------------------------------


async def locked_transactions(
    session: AsyncSession, transaction_ids: Collection[int]
) -> dict[int, Transaction]:
    """These transactions, fresh and locked until commit (PostgreSQL; SQLite has one writer),
    with one query; they stay in the session. As `transactions._locked`, for many."""
    if not transaction_ids:
        return {}
    stmt = _select_locked(_dialect(session))
    rows = await session.scalars(stmt, {"ids": list(transaction_ids)})
    return {row.id: row for row in rows if row.id is not None}


@cache
def _select_locked(dialect: str) -> Select[Transaction]:
    return (
        select(Transaction)
        .where(_among(table_of(Transaction).c.id, "ids", dialect))
        .with_for_update()
        .execution_options(populate_existing=True)
    )


@dataclass(frozen=True)
class StopWrite:
    """What a charger's Stop writes on its open, locked row (`stop_values`, with the CDR
    marks `mark_cdrs` notes for `step`), and the CDR step it leaves the transaction at."""

    row: Transaction
    values: dict[str, Any]
    step: CdrStep


# The columns a StopWrite sets, whatever the Stop: `stop_values`, whose flags and
# `updated_at` the CDR marks may set again.
_STOP_COLUMNS = (
    "meter_stop",
    "stop_timestamp",
    "stop_reason",
    "stop_id_tag",
    "charger_stopped",
    "flags",
    "updated_at",
)


def stop_write(row: Transaction, *, request: StopRequest, now: datetime) -> StopWrite:
    """The charger's Stop on its open, locked row, as `write_stops` writes it. The lock is
    the guard `transactions._stop_known`'s conditional UPDATE is: of two Stops, the second
    finds `charger_stopped` set. The CDR step is decided from the row as the Stop leaves
    it; a charger's own Stop never carries an estimate to keep (`end_events`)."""
    assert not row.charger_stopped
    values = stop_values(row, request=request, now=now)
    step = cdr_step(
        started_at=row.start_timestamp,
        stopped_at=values["stop_timestamp"],
        charger_stopped=values["charger_stopped"],
        flags=values["flags"],
    )
    values |= cdr_marks(values["flags"], step=step, estimated_cdr=None, now=now)
    return StopWrite(row=row, values=values, step=step)


async def write_stops(session: AsyncSession, writes: Sequence[StopWrite]) -> None:
    """Write a group's Stops (`stop_write`): on PostgreSQL one UPDATE ... FROM unnest for
    all of them, elsewhere one executemany; then each row in the session takes its values
    as stored (not as changes left for a flush).

    The ORM's flush of the changed rows was an executemany too: on PostgreSQL a Bind and
    Execute per row on the server and SQLAlchemy's unit of work and bind processing per
    row in csms."""
    if not writes:
        return
    assert all(tuple(w.values) == _STOP_COLUMNS for w in writes)
    connection = await session.connection()
    if len(writes) > 1 and connection.dialect.name == "postgresql":
        arrays = {f"a_{name}": [w.values[name] for w in writes] for name in _STOP_COLUMNS}
        # A JSON array's items as their text: SQLAlchemy's ARRAY would take a list item as
        # a dimension of the array. orjson writes what the engine's serializer writes.
        arrays["a_flags"] = [orjson.dumps(flags).decode() for flags in arrays["a_flags"]]
        await connection.execute(_update_stops(), {"a_tid": [w.row.id for w in writes], **arrays})
    else:
        rows = [
            {"tid": w.row.id, **{f"p_{name}": w.values[name] for name in _STOP_COLUMNS}}
            for w in writes
        ]
        await connection.execute(_update_stop(), rows)
    for w in writes:
        for name, value in w.values.items():
            set_committed_value(w.row, name, value)


@cache
def _update_stop() -> Executable:
    tx = table_of(Transaction)
    return (
        update(tx)
        .where(tx.c.id == bindparam("tid", type_=tx.c.id.type))
        .values({name: bindparam(f"p_{name}", type_=tx.c[name].type) for name in _STOP_COLUMNS})
    )


@cache
def _update_stops() -> Executable:
    """`_update_stop` for many rows (PostgreSQL): the Stops as a table (`unnest_rows`, one
    array `a_<column>` per column and `a_tid`); the group's transactions are distinct."""
    tx = table_of(Transaction)
    types = {name: tx.c[name].type for name in _STOP_COLUMNS} | {"flags": Text}
    stops = unnest_rows("s", {"tid": tx.c.id.type, **types})
    values = {name: stops.c[name] for name in _STOP_COLUMNS}
    return (
        update(tx)
        .where(tx.c.id == stops.c.tid)
        .values(values | {"flags": cast(stops.c.flags, tx.c.flags.type)})
    )


async def samples_of(
    session: AsyncSession, transaction_ids: Collection[int]
) -> dict[int, list[Sample]]:
    """`samples.transaction_samples` of many transactions as core samples
    (`samples.samples_of`), with one query and no ORM objects; only those of the measurands
    a session's events and price read (`SESSION_MEASURANDS`)."""
    found: dict[int, list[Sample]] = {transaction_id: [] for transaction_id in transaction_ids}
    if not transaction_ids:
        return found
    stmt = _select_samples(_dialect(session))
    rows = await session.execute(stmt, {"ids": list(transaction_ids)})
    for transaction_id, timestamp, *fields in rows:
        if timestamp is not None:
            found[transaction_id].append(Sample(timestamp, *fields))
    return found


@cache
def _select_samples(dialect: str) -> Select[Any]:
    mv = table_of(MeterValue)
    return (
        select(mv.c.transaction_id, *(mv.c[name] for name in _SAMPLE_COLUMNS))
        .where(
            # An expanding IN, not `_among`: PostgreSQL's generic plan for `= ANY($1)` on
            # this large table was several times slower under P6 (bench/analysis.md, P6 "I").
            mv.c.transaction_id.in_(bindparam("ids", expanding=True)),
            mv.c.after_stop.is_(False),
            mv.c.measurand.in_(sorted(SESSION_MEASURANDS)),
        )
        .order_by(mv.c.timestamp, mv.c.id)
    )


# Sample's fields in order, each kept in the meter_values column of the same name.
_SAMPLE_COLUMNS = (
    "timestamp",
    "value",
    "measurand",
    "unit",
    "context",
    "location",
    "phase",
    "format",
)


async def charge_points(
    session: AsyncSession, charge_point_ids: Collection[str]
) -> dict[str, ChargePoint]:
    """These chargers, read with one query. While the caller holds the answer, a
    `session.get` of one of them costs no query (the session's identity map is weak)."""
    return await _by_key(session, ChargePoint, "id", charge_point_ids)


async def locations(session: AsyncSession, location_ids: Collection[str]) -> dict[str, Location]:
    """These locations, read with one query (those that exist)."""
    return await _by_key(session, Location, "id", location_ids)
