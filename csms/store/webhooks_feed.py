"""The webhook workers' outbox reads: on SQLite, on the event loop's thread.

A subscription's worker reads the outbox behind its cursor after every commit of the writer.
Through aiosqlite one read is five thread hops (cursor, execute, fetchall, close, the pool's
rollback), each waiting for the GIL and then for a pass of the event loop. On a busy csms
(bench P7: 2,000 MeterValues/s, MQTT and webhooks on one core of a loaded machine) that was
130 ms a read, p50, and most of the OCPP -> webhook POST latency (docs/performance.md,
"Webhooks"). The query itself is a primary-key range of at most a few hundred rows, well
under a millisecond, so here it runs where it is awaited, as the writer's statements do
(csms/store/sqlite_inline.py):

- In WAL mode a reader does not wait for the writer (https://sqlite.org/wal.html §2.2): it
  reads the last commit's snapshot. Its connection runs with `busy_timeout = 0`, so the rare
  SQLITE_BUSY a reader can meet (another connection recovering the WAL) never stalls the
  loop: that read goes to aiosqlite's thread and waits there, up to the configured timeout.
- Each SELECT runs in autocommit (no open transaction between reads), so every read sees
  what was committed before it started.

PostgreSQL, and in-memory SQLite (one database per connection), read on the database's
own engine. Either way a read takes a connection and gives it back in place: the exit of
SQLAlchemy's `async with` (connection or session) closes in a task of its own, three
passes of the event loop per read, which a busy loop makes milliseconds.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from csms.errors import StoreError
from csms.store.db import Database
from csms.store.outbox import PendingEvent
from csms.store.sqlite_inline import InlineConnection
from csms.store.webhooks import select_after

# What a read waits on aiosqlite's thread when the inline try met SQLITE_BUSY (ms).
BUSY_TIMEOUT_MS = 30_000


class OutboxFeed:
    """Outbox rows after a cursor, oldest first: inline on a file SQLite database."""

    def __init__(self, database: Database) -> None:
        self._own = inline_reader(database.url) if _file_sqlite(database.url) else None
        self._engine = self._own or database.engine

    @property
    def inline(self) -> bool:
        return self._own is not None

    async def after(self, *, after: int, limit: int) -> list[PendingEvent]:
        """Rows with id > `after`, at most `limit`.

        Raises:
            StoreError: the database failed.
        """
        try:
            connection = await self._engine.connect()
            try:
                result = await connection.execute(select_after(), {"after": after, "limit": limit})
                rows = [PendingEvent(*row) for row in result]
            except BaseException:
                # The caller hears the first failure, a cancellation too, not the close's.
                with contextlib.suppress(Exception):
                    await connection.close()
                raise
            await connection.close()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"database read failed: {type(exc).__name__}") from exc
        return rows

    async def close(self) -> None:
        if self._own is not None:
            await self._own.dispose()


def _file_sqlite(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    name = parsed.database or ""
    return name not in ("", ":memory:") and "mode=memory" not in str(parsed)


class InlineReader(InlineConnection):
    """An aiosqlite connection whose reads run on the calling thread; one that meets
    SQLITE_BUSY runs again on aiosqlite's thread, where it may wait."""

    # Calls running or queued on aiosqlite's thread. While there are any, every call goes
    # there too, behind them: a read cancelled while it waits for the lock must not have
    # its cursor closed, or the connection reused, beside the thread still running it.
    _on_thread_now = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        if not self._on_thread_now:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
        self._on_thread_now += 1
        return await self._on_thread(self._patiently, fn, *args, **kwargs)

    def _patiently(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """On aiosqlite's thread: `fn`, waiting up to the busy timeout for a lock."""
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                return fn(*args, **kwargs)
            finally:
                self._conn.execute("PRAGMA busy_timeout = 0")
        finally:
            self._on_thread_now -= 1  # done with the connection (the GIL orders this)


def _connect(database: str, **kwargs: Any) -> InlineReader:
    # Opened on aiosqlite's thread, then used from the event loop's (never both at once).
    kwargs["check_same_thread"] = False
    kwargs["isolation_level"] = None  # autocommit: no transaction held between reads
    kwargs["timeout"] = 0  # busy_timeout 0: see InlineReader
    connection = InlineReader(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True
    return connection


def inline_reader(url: str) -> AsyncEngine:
    """An engine for outbox reads on the event loop's thread (a file SQLite database)."""
    return create_async_engine(url, connect_args={"async_creator_fn": _connect})
