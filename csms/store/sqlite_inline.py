"""SQLite for the writer: its statements run on the event loop's thread, its waits do not.

aiosqlite runs every call on a thread of its own: each statement is a thread hop there and
back, about 300 µs of wall time on the bench machine against about 10 µs for SQLite itself
to run a small statement. The writer runs its batch's statements one after the other
(Start and Stop alone take 10-15 each), so those hops were most of a batch's time and a
good part of the CPU (docs/performance.md, "Sessions under load").

`InlineConnection` runs statements on the calling thread. What can wait still goes to
aiosqlite's thread, so the event loop never blocks on a lock or a disk flush:
- `BEGIN IMMEDIATE` (the writer's engine begins every transaction so, see `inline_engine`)
  is tried here without waiting; only when another process holds the write lock does it
  go to the thread, to wait up to the busy timeout;
- a WAL checkpoint, which writes and fsyncs the database: this connection's commits do
  not run one (`wal_autocheckpoint = 0`); every CHECKPOINT_EVERY commits one runs on a
  thread and a connection of its own, while the writer goes on, and the commit after it
  runs on aiosqlite's thread (it may start the WAL over and sync its header). Any other
  COMMIT, in WAL mode with synchronous=NORMAL, appends to the WAL without a sync.
Between BEGIN and COMMIT this connection holds SQLite's write lock: no statement can wait
for a lock (in WAL mode readers never block the writer, https://sqlite.org/wal.html §2.2).
Reads elsewhere keep aiosqlite's thread: an API page may take longer than a write. Only
small reads by key on the commands' path run here too (`InlineReader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiosqlite
import structlog
from sqlalchemy import Connection, Executable, event
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

log = structlog.get_logger("csms.store")

_WAITS = ("BEGIN",)
# Commits between two WAL checkpoints. SQLite's own default is every 1,000 pages (~4 MB); a
# batch of the writer adds a few to a few dozen pages.
CHECKPOINT_EVERY = 100
# The dialect `InlineReader` compiles for: qmark parameters, as sqlite3 takes them.
_SQLITE = SQLiteDialect_aiosqlite()


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the event loop's thread (see above)."""

    _busy_timeout: int | None = None  # ms, as configured; read at the first BEGIN
    _commits = 0  # since the last checkpoint
    _wal_may_restart = False
    _path: str | None = None  # the database file, for the checkpoint's own connection
    _checkpointer: sqlite3.Connection | None = None
    _checkpointing: asyncio.Future[None] | None = None
    # Given the checkpoint connection's SQL (sqlite3's trace callback; tests watch it).
    checkpoint_trace: Callable[[str], None] | None = None

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        # aiosqlite's cursor passes the SQL text first: a BEGIN may wait for a lock.
        if args and isinstance(args[0], str) and args[0].lstrip()[:5].upper() in _WAITS:
            return await self._begin(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _begin(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Take the write lock: here when it is free (no thread hop, the common case), else
        on aiosqlite's thread, waiting up to the busy timeout."""
        connection = self._conn
        if self._busy_timeout is None:
            self._busy_timeout = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
        finally:
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout}")
        return await self._on_thread(fn, *args, **kwargs)

    async def _on_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        on_thread: Callable[..., Awaitable[Any]] = super()._execute
        return await on_thread(fn, *args, **kwargs)

    async def commit(self) -> None:
        if not self._conn.in_transaction:
            return
        if self._wal_may_restart:
            # The first commit after a checkpoint may start the WAL over, and syncs its
            # header then (https://sqlite.org/pragma.html#pragma_synchronous): a disk flush.
            await self._on_thread(self._conn.commit)
            self._wal_may_restart = False
        else:
            # WAL, synchronous=NORMAL, no automatic checkpoint: appends to the WAL, no sync.
            self._conn.commit()
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._commits = 0
            # Not awaited: the writer goes on committing while the checkpoint copies the WAL
            # into the database (a few to hundreds of ms, every charger waiting on the writer
            # meanwhile: the P2 tail, issue 20). It runs on a connection of its own: this one
            # is the writer's, and SQLite runs one call at a time per connection.
            loop = asyncio.get_running_loop()
            self._checkpointing = loop.run_in_executor(None, self._checkpoint)
            self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpoint(self) -> None:
        # PASSIVE: copies what no reader still needs, never waits (https://sqlite.org/wal.html);
        # a checkpoint runs beside a writer appending to the WAL (wal.html, "Concurrency").
        if self._checkpointer is None:
            assert self._path is not None
            self._checkpointer = sqlite3.connect(
                self._path, check_same_thread=False, uri=self._path.startswith("file:")
            )
            self._checkpointer.set_trace_callback(self.checkpoint_trace)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        # The next write may start the WAL over (and sync its header): that commit goes to
        # aiosqlite's thread.
        self._wal_may_restart = True
        if not done.cancelled() and done.exception() is not None:
            log.warning("wal_checkpoint_failed", error=repr(done.exception()))

    async def checkpointed(self) -> None:
        """Return once no checkpoint runs (one that fails is logged, see `_checkpointed`)."""
        running = self._checkpointing
        if running is not None:
            # Its done-callback (`_checkpointed`, added first) runs before this resumes.
            with contextlib.suppress(sqlite3.Error):
                await running

    async def close(self) -> None:
        await self.checkpointed()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        await super().close()

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await self._on_thread(self._conn.rollback)


def _connect(database: str, **kwargs: Any) -> InlineConnection:
    # Opened on aiosqlite's thread, then used from the event loop's (never both at once:
    # each call is awaited before the next).
    kwargs["check_same_thread"] = False
    # Transactions are begun explicitly (BEGIN IMMEDIATE), not by the sqlite3 module.
    kwargs["isolation_level"] = None
    connection = InlineConnection(partial(_open, database, **kwargs), 64)
    connection._thread.daemon = True
    connection._path = database
    return connection


def _open(database: str, **kwargs: Any) -> sqlite3.Connection:
    connection: sqlite3.Connection = sqlite3.connect(database, **kwargs)
    # This connection's commits never checkpoint (a checkpoint syncs the database to disk):
    # `InlineConnection.commit` runs one on aiosqlite's thread every CHECKPOINT_EVERY.
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    return connection


def inline_engine(url: str, **options: Any) -> AsyncEngine:
    """An engine for the writer whose transactions take SQLite's write lock at BEGIN."""
    connect_args = dict(options.pop("connect_args", {}))
    connect_args["async_creator_fn"] = _connect
    engine = create_async_engine(url, connect_args=connect_args, **options)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _begin_immediate(connection: Connection) -> None:
    # The write lock taken at BEGIN (InlineConnection._begin): later statements cannot meet
    # SQLITE_BUSY, so none of them waits.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class InlineBusy(Exception):
    """SQLite could not start the read without waiting: read it on aiosqlite's thread."""


class InlineReader:
    """Small reads on the calling thread: one statement, no aiosqlite thread round trip.

    A read through aiosqlite is half a dozen hops to its thread and back (connect, cursor,
    execute, fetch, close, rollback), each waiting for a turn of the event loop, which
    under load also runs the writer's batches: a lookup by primary key took 61-146 ms at
    p99 that way (bench/analysis.md, "P4, commands"), against about 10 µs for SQLite to run
    it. In WAL mode a reader takes no lock that a writer waits for, and waits for none
    (https://sqlite.org/wal.html §2.2, "Concurrency"): it reads the last commit as of its
    statement's start, so it can run here, on the event loop's thread, as the writer's
    statements do. Its connection is read-only (`PRAGMA query_only`), in autocommit (each
    statement its own read transaction), one per thread. The rare case where even a WAL
    reader would have to wait (another connection recovering the WAL index) raises
    `InlineBusy` at once (busy timeout 0); the caller then reads the usual way.

    Only for reads by key of a row or a few: the rows come back as SQLite stores them (no
    SQLAlchemy result processing), so the columns read must be text or integers.
    """

    def __init__(self, database: str, *, uri: bool) -> None:
        self._database = database
        self._uri = uri
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._compiled: dict[int, tuple[Executable, str, tuple[str, ...]]] = {}

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> InlineReader | None:
        """A reader of the engine's SQLite file, or None when it is no file (in memory)."""
        args, options = engine.dialect.create_connect_args(engine.url)
        database = str(args[0]) if args else ""
        if database in ("", ":memory:") or "mode=memory" in database:
            return None
        return cls(database, uri=bool(options.get("uri", False)))

    def first(self, statement: Executable, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row (its values as SQLite stores them), or None.

        Raises:
            InlineBusy: SQLite would have had to wait.
            sqlite3.Error: any other failure.
        """
        sql, names = self._sql(statement)
        connection = self._connection()
        cursor = connection.cursor()
        try:
            row: tuple[Any, ...] | None = cursor.execute(
                sql, [params[name] for name in names]
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise InlineBusy(str(exc)) from exc
            raise
        finally:
            # Resets the statement, which ends its read transaction: a reader left open
            # would keep seeing its snapshot, and hold back the WAL's checkpoints.
            cursor.close()
        return row

    def _sql(self, statement: Executable) -> tuple[str, tuple[str, ...]]:
        # Statements are cached objects (`functools.cache`): compiled once each. The
        # statement is kept with its SQL so that its id is not reused by another.
        known = self._compiled.get(id(statement))
        if known is None or known[0] is not statement:
            assert isinstance(statement, ClauseElement)
            compiled = statement.compile(dialect=_SQLITE)
            assert isinstance(compiled, SQLCompiler)
            assert compiled.positiontup is not None
            known = (statement, compiled.string, tuple(compiled.positiontup))
            self._compiled[id(statement)] = known
        return known[1], known[2]

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self._database,
                uri=self._uri,
                isolation_level=None,
                check_same_thread=False,  # closed by `close`, from whichever thread
                timeout=0,
            )
            connection.execute("PRAGMA query_only = 1")
            self._local.connection = connection
            self._opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._opened:
            connection.close()
        self._opened.clear()
        self._local = threading.local()
