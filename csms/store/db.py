"""Database engine, migrations, and the group-commit writer every state change goes through."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from operator import itemgetter
from typing import Any, TypeVar, cast

import orjson
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ARRAY,
    JSON,
    Connection,
    Dialect,
    Executable,
    bindparam,
    column,
    event,
    func,
    text,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from csms.errors import StoreError
from csms.metrics import Metrics, monotonic
from csms.store.sqlite_inline import InlineBusy, InlineReader, inline_engine
from csms.store.tables import UTCDateTime

T = TypeVar("T")
Job = Callable[[AsyncSession], Awaitable[T]]
# Builds a statement for a dialect name; cached, so equal writes share one statement object.
StatementFactory = Callable[[str], Executable]


@dataclass(frozen=True)
class BulkWrite:
    """Writes that commute with every other job of a batch.

    The writer runs equal statements from many chargers as one executemany: one driver
    round trip instead of one per charger, which is what makes group commit pay off
    (an aiosqlite statement costs a thread hop; an asyncpg one a network round trip).
    """

    steps: tuple[tuple[StatementFactory, dict[str, Any]], ...]


# Runs the items of one kind of grouped job together: one result per item, in order.
GroupRunner = Callable[[AsyncSession, list[Any]], Awaitable[list[Any]]]


@dataclass(frozen=True)
class GroupJob:
    """An item of work the writer runs together with the items of the same `run` in a batch.

    A batch's StartTransactions (or StopTransactions) from many chargers become a few
    set-based statements for all of them instead of a dozen statements each: what `run`
    reads, it reads once for the group. When a batch fails, each item is run again alone
    (a group of one), as jobs are.
    """

    run: GroupRunner
    item: Any


_Work = Job[Any] | BulkWrite | GroupJob
_Item = tuple[_Work, asyncio.Future[Any]]

log = structlog.get_logger("csms.store")

MAX_BATCH = 256


def _json_text(value: Any) -> str:
    # orjson is several times faster than json.dumps on the outbox's and samples' JSON
    # columns; non-str keys are written as json.dumps writes them.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(url: str, *, writer: bool = False, pinged: bool = True) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys.

    `writer`: the engine of the writer's transactions; on SQLite its statements run on the
    event loop's thread (csms.store.sqlite_inline says why), on PostgreSQL it holds one
    connection, not pinged before each batch. `pinged=False`: reads whose connection is not
    pinged before each use (`Database.read`).
    """
    json = {"json_serializer": _json_text, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        make = inline_engine if writer else create_async_engine
        # Not pinged either way: a SQLite connection is a file, not a socket that can drop.
        engine = make(url, connect_args={"timeout": 30}, **json)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if not pinged:
        return create_async_engine(url, pool_size=2, max_overflow=0, pool_pre_ping=False, **json)
    if writer:
        # The writer's one connection, kept for the process's life and never pinged: a
        # pre-ping is a round trip before every batch. A connection that died between two
        # batches (a database restart, an idle timeout) fails its next batch, which then runs
        # again on a new one (`Writer._run_reconnecting`).
        return create_async_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False, **json)
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **json)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets API reads run beside the writer; NORMAL is durable across process crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def migrate(engine: AsyncEngine) -> None:
    """Apply every Alembic migration up to head."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Cluster mode: nodes starting together migrate one after the other (the lock
            # ends with this transaction). The key is arbitrary and fixed.
            await connection.execute(text("SELECT pg_advisory_xact_lock(7305861204)"))
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("csms.store") / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


class Writer:
    """Group commit: one task runs the writes of many chargers in one database transaction.

    Each caller awaits its own job, so an OCPP answer goes out only after its data is
    committed. Jobs must be safe to run again: when a batch fails, it is rolled back and
    split in halves, each committed on its own, down to the failing job alone. One bad job
    in a batch of n costs about 2·log2(n) transactions instead of n, so a charger whose
    messages keep failing does not cut everyone else's throughput (issue 13).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, metrics: Metrics | None = None
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._closed = False
        self._committing: list[_Item] = []
        # Called after every batch (the outbox relay wakes on it).
        self.listeners: list[Callable[[], None]] = []

    async def submit(self, job: Job[T]) -> T:
        """Run a job in the next batch and return its result once committed.

        Raises:
            StoreError: the database failed, or the writer is closed; nothing was committed.
        """
        return await self._enqueue(job)  # type: ignore[no-any-return]

    async def submit_bulk(self, write: BulkWrite) -> None:
        """Commit a bulk write in the next batch.

        Raises:
            StoreError: the database failed, or the writer is closed; nothing was committed.
        """
        await self._enqueue(write)

    async def submit_group(self, job: GroupJob) -> Any:
        """Run a grouped job in the next batch, with the others of its kind; its result once
        committed.

        Raises:
            StoreError: the database failed, or the writer is closed; nothing was committed.
        """
        return await self._enqueue(job)

    async def _enqueue(self, item: _Work) -> Any:
        if self._closed:
            raise StoreError("the writer is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    def close(self) -> None:
        """Refuse new jobs; `run` returns once every job queued before this is committed."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def run(self) -> None:
        """Commit batches until `close` is called and the queue is empty."""
        try:
            await self._run_batches()
        finally:
            # Done, or cancelled by a shutdown past its grace: nothing will commit what is
            # left, so its callers hear it now instead of waiting forever (a charger's
            # disconnect record would otherwise hold the process open at exit).
            self._closed = True
            self._fail_left(StoreError("the writer stopped before committing this"))

    async def _run_batches(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    await self._commit(batch)
                    return
                batch.append(item)
            await self._commit(batch)

    def _fail_left(self, error: StoreError) -> None:
        left = [*self._committing]
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                left.append(item)
        for _, future in left:
            if not future.done():
                _settle(future, error=error)

    async def _commit(self, batch: list[_Item]) -> None:
        started = monotonic()
        self._committing = batch
        try:
            await self._commit_batch(batch)
        finally:
            self._committing = []
            self._metrics.commit(len(batch), monotonic() - started)
            for listener in self.listeners:
                listener()

    async def _commit_batch(self, batch: list[_Item]) -> None:
        live = [(job, future) for job, future in batch if not future.done()]
        if live:
            await self._commit_group(live)

    async def _commit_group(self, group: list[_Item]) -> None:
        try:
            results = await self._run_reconnecting([job for job, _ in group])
        except Exception as exc:
            if len(group) == 1 or _database_away(exc):
                # Alone, the job is the culprit; with the database away, every retry would
                # fail the same way: each caller hears it now (StoreError, InternalError).
                for _, future in group:
                    _settle(future, error=exc)
                return
            self._metrics.batch_split()
            log.warning("batch_failed_bisecting", jobs=len(group), error=repr(exc))
            middle = len(group) // 2
            await self._commit_group(group[:middle])
            await self._commit_group(group[middle:])
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result=result)

    async def _run_reconnecting(self, jobs: list[_Work]) -> list[Any]:
        """Run the jobs; once more on a new connection when the database dropped this one.

        The writer's connection is not pinged before each batch (`create_engine`): one lost
        since the last batch shows here, and the pool has already discarded it. Running the
        batch again is safe (jobs must be, see the class), and an outage still fails: a
        database that is really away fails the second run too, and its callers hear it.
        """
        try:
            return await self._run_jobs(jobs)
        except Exception as exc:
            if not _database_away(exc):
                raise
            log.warning("writer_reconnecting", jobs=len(jobs), error=repr(exc))
        return await self._run_jobs(jobs)

    async def _run_jobs(self, jobs: list[_Work]) -> list[Any]:
        grouped: dict[StatementFactory, list[dict[str, Any]]] = {}
        groups: dict[GroupRunner, list[int]] = {}
        for index, job in enumerate(jobs):
            if isinstance(job, BulkWrite):
                for factory, params in job.steps:
                    grouped.setdefault(factory, []).append(params)
            elif isinstance(job, GroupJob):
                groups.setdefault(job.run, []).append(index)
        results: list[Any] = [None] * len(jobs)
        async with self._sessions() as session, session.begin():
            connection = await session.connection()
            for factory, rows in grouped.items():
                await execute_many(connection, factory, rows)
            for index, job in enumerate(jobs):
                if isinstance(job, BulkWrite):
                    continue
                if isinstance(job, GroupJob):
                    # A group runs once, where its first item was queued.
                    members = groups.pop(job.run, None)
                    if members is None:
                        continue
                    items = [cast(GroupJob, jobs[i]).item for i in members]
                    for member, result in zip(members, await job.run(session, items), strict=True):
                        results[member] = result
                else:
                    results[index] = await job(session)
                # Each job starts from the database, not from objects a neighbour loaded.
                await session.flush()
                session.expunge_all()
        return results


# A bulk statement's set-based form for a dialect, or None where it has none (see `set_form`).
SetFormFactory = Callable[[str], Executable | None]
_set_forms: dict[StatementFactory, SetFormFactory] = {}


def set_form(factory: StatementFactory) -> Callable[[SetFormFactory], SetFormFactory]:
    """Register the set-based form of a bulk statement: all of a batch's rows in one statement.

    An executemany runs its statement once per row: on PostgreSQL each row is a Bind and an
    Execute, with the executor started and ended for each (asyncpg pipelines them, but the
    server still does the work row by row, about as much CPU as csms spends on the row).
    The set form takes the rows as one array per parameter (`unnest_rows`) and is run once.
    Its array parameters are named `a_` + the row's key. It must have the same effect as
    the rows run one after the other, in order (an UPDATE where two rows hit the same row
    keeps the last, as the executemany would).
    """

    def register(build: SetFormFactory) -> SetFormFactory:
        _set_forms[factory] = build
        return build

    return register


def unnest_rows(name: str, columns: dict[str, Any]) -> Any:
    """A batch's rows as a table: `unnest` of one array parameter per column, WITH ORDINALITY.

    `columns` maps each row key to its SQL type; the table's columns are those keys and
    `ord`, the row's place in the batch (1-based). PostgreSQL only.
    """
    arrays = [bindparam(f"a_{key}", type_=ARRAY(type_)) for key, type_ in columns.items()]
    return (
        func.unnest(*arrays)
        .table_valued(
            *(column(key, type_) for key, type_ in columns.items()), with_ordinality="ord"
        )
        .render_derived(name=name)
    )


async def execute_many(
    connection: AsyncConnection, factory: StatementFactory, rows: list[dict[str, Any]]
) -> None:
    """Run a bulk statement for many rows: its set form when it has one on this dialect
    (one statement, `set_form`), else one executemany; compiled once (`_Prepared`)."""
    dialect = connection.dialect
    if len(rows) > 1 and factory in _set_forms:
        form = _prepare_set(factory, dialect)
        if form is not None:
            await connection.exec_driver_sql(form.sql, form.arrays(rows))
            return
    prepared = _prepare(factory, dialect)
    if prepared is None:
        await connection.execute(factory(dialect.name), rows)
    else:
        await connection.exec_driver_sql(prepared.sql, prepared.parameters(rows))


_Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class _Prepared:
    """A bulk statement compiled once to driver SQL, with how to turn a row into its tuple.

    SQLAlchemy runs every bind processor of every row of an executemany in Python (about
    a quarter of the CPU of a MeterValues); these converters do the same job in one step.
    """

    sql: str
    # Each parameter once (SQLite repeats a name at every place it is used), converted.
    inputs: tuple[tuple[str, _Convert | None], ...]
    # The statement's own literals, e.g. the 0 of `connector > 0`, converted.
    literals: tuple[Any, ...]
    # Placeholder i takes (inputs + literals)[order[i]].
    order: tuple[int, ...]

    def parameters(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        pick = itemgetter(*self.order)
        literals = list(self.literals)
        # Rows of one batch share their datetimes (`now`, a MeterValue's timestamp), so
        # each distinct object is converted once.
        seen: dict[int, Any] = {}
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values: list[Any] = []
            for name, convert in self.inputs:
                value = row[name]
                if convert is not None and value is not None:
                    key = id(value)
                    converted = seen.get(key, _MISSING)
                    if converted is _MISSING:
                        converted = seen[key] = convert(value)
                    value = converted
                values.append(value)
            picked = pick(values + literals)
            out.append(picked if len(self.order) > 1 else (picked,))
        return out

    def arrays(self, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        """A set form's parameters: for each `a_<key>` input, the rows' values as a list."""
        seen: dict[int, Any] = {}
        values: list[Any] = []
        for name, convert in self.inputs:
            key = name.removeprefix("a_")
            if convert is None:
                values.append([row[key] for row in rows])
                continue
            column: list[Any] = []
            for row in rows:
                value = row[key]
                if value is not None:
                    converted = seen.get(id(value), _MISSING)
                    if converted is _MISSING:
                        converted = seen[id(value)] = convert(value)
                    value = converted
                column.append(value)
            values.append(column)
        return tuple((values + list(self.literals))[i] for i in self.order)


_MISSING = object()
_prepared: dict[tuple[StatementFactory, str], _Prepared | None] = {}


_prepared_sets: dict[tuple[StatementFactory, str], _Prepared | None] = {}


def _prepare(factory: StatementFactory, dialect: Dialect) -> _Prepared | None:
    """The factory's statement as driver SQL, or None when SQLAlchemy must run it.

    None for a dialect with named parameters, and for statements with Python-side
    column defaults (SQLAlchemy computes those per execution).
    """
    key = (factory, dialect.name)
    if key not in _prepared:
        _prepared[key] = _compile(factory(dialect.name), dialect, for_executemany=True)
    return _prepared[key]


def _prepare_set(factory: StatementFactory, dialect: Dialect) -> _Prepared | None:
    """The factory's set form on this dialect as driver SQL, or None where it has none."""
    key = (factory, dialect.name)
    if key not in _prepared_sets:
        statement = _set_forms[factory](dialect.name)
        _prepared_sets[key] = (
            None if statement is None else _compile(statement, dialect, for_executemany=False)
        )
    return _prepared_sets[key]


def _compile(statement: Executable, dialect: Dialect, *, for_executemany: bool) -> _Prepared | None:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect, for_executemany=for_executemany)
    assert isinstance(compiled, SQLCompiler)
    names = compiled.positiontup
    prepared = None
    if compiled.positional and names is not None and not compiled.insert_prefetch:
        if not compiled.update_prefetch:
            inputs: dict[str, _Convert | None] = {}
            literals: list[Any] = []
            placed: list[tuple[bool, int]] = []
            for name in names:
                bind = compiled.binds[name]
                convert = _converter(bind.type, dialect)
                if bind.required or bind.callable is not None:
                    if name not in inputs:
                        inputs[name] = convert
                    placed.append((True, list(inputs).index(name)))
                else:
                    value = bind.value if convert is None else convert(bind.value)
                    literals.append(value)
                    placed.append((False, len(literals) - 1))
            order = tuple(i if is_input else len(inputs) + i for is_input, i in placed)
            prepared = _Prepared(
                sql=compiled.string,
                inputs=tuple(inputs.items()),
                literals=tuple(literals),
                order=order,
            )
    return prepared


def _converter(type_: Any, dialect: Dialect) -> _Convert | None:
    if isinstance(type_, ARRAY):
        # A set form's array parameter (`unnest_rows`): each element is converted.
        return _converter(type_.item_type, dialect)
    if isinstance(type_, UTCDateTime):
        return _utc_text if dialect.name == "sqlite" else _utc
    if isinstance(type_, JSON):
        return _json_text
    processor: _Convert | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_text(value: datetime | None) -> str | None:
    # What UTCDateTime and SQLAlchemy's SQLite DATETIME store: naive UTC, microseconds.
    if value is None:
        return None
    utc = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(" ", "microseconds")


def _database_away(exc: BaseException) -> bool:
    """Whether a failure is the database's (unreachable, connection lost), not a job's."""
    if isinstance(exc, OSError | ConnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: Any = None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    elif isinstance(error, SQLAlchemyError | OSError):
        log.error("write_failed", error=repr(error))
        future.set_exception(StoreError(f"database write failed: {type(error).__name__}"))
    else:
        future.set_exception(error)


class Database:
    """The engine, a session factory for reads, and the writer for every change."""

    def __init__(self, url: str, *, metrics: Metrics | None = None) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The writer has an engine of its own (create_engine says how it differs).
        self.write_engine = create_engine(url, writer=True)
        self.writer = Writer(
            async_sessionmaker(self.write_engine, expire_on_commit=False), metrics=metrics
        )
        # Created on first use (`reading(pinged=False)`).
        self._unpinged_engine: AsyncEngine | None = None
        # SQLite: small reads on the calling thread (`read_first`).
        self._inline = InlineReader.for_engine(self.engine) if _is_sqlite(url) else None
        self._unpinged: async_sessionmaker[AsyncSession] | None = None

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; a database failure comes out as `StoreError`, never as
        SQLAlchemy's or the driver's own error (the store converts at its edge).
        """
        try:
            async with self.sessions() as session:
                yield session
        except (SQLAlchemyError, OSError) as exc:
            log.warning("read_failed", error=repr(exc))
            raise StoreError(f"database read failed: {type(exc).__name__}") from exc

    async def read(self, query: Job[T], *, pinged: bool = True) -> T:
        """Run a read-only query in a session of its own.

        `pinged=False` (PostgreSQL): on a connection not pinged before the read, for reads
        that follow every batch (the outbox relay). asyncpg's ping is BEGIN, a query and
        ROLLBACK: three round trips per read. A connection the database dropped since the
        last read fails it; the read then runs once more on a new one, as the ping would
        have done (the pool discarded the dropped one). Reads are safe to run again.

        Raises:
            StoreError: the database failed.
        """
        if pinged or _is_sqlite(self.url):
            async with self.reading() as session:
                return await query(session)
        if self._unpinged is None:
            self._unpinged_engine = create_engine(self.url, pinged=False)
            self._unpinged = async_sessionmaker(self._unpinged_engine, expire_on_commit=False)
        try:
            try:
                async with self._unpinged() as session:
                    return await query(session)
            except Exception as exc:
                if not _database_away(exc):
                    raise
            async with self._unpinged() as session:
                return await query(session)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("read_failed", error=repr(exc))
            raise StoreError(f"database read failed: {type(exc).__name__}") from exc

    async def read_first(
        self, statement: Executable, params: dict[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of a small read by key, or None. On SQLite it runs on the calling
        thread, no aiosqlite thread hop (`InlineReader`: text and integer columns only),
        unless SQLite would have to wait; elsewhere in a session, as `read`.

        Raises:
            StoreError: the database failed.
        """
        if self._inline is not None:
            try:
                return self._inline.first(statement, params)
            except InlineBusy:
                pass
            except sqlite3.Error as exc:
                log.warning("read_failed", error=repr(exc))
                raise StoreError(f"database read failed: {type(exc).__name__}") from exc
        async with self.reading() as session:
            row = (await session.execute(statement, params)).first()
        return None if row is None else tuple(row)

    async def migrate(self) -> None:
        await migrate(self.engine)

    async def dispose(self) -> None:
        if self._inline is not None:
            self._inline.close()
        await self.engine.dispose()
        if self._unpinged_engine is not None:
            await self._unpinged_engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")
