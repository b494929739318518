"""SQLite for the writer: its statements run on the event loop's thread, its waits do not.

aiosqlite runs every call on a thread of its own: each statement is a thread hop there and
back, about 300 µs of wall time on the bench machine against about 10 µs for SQLite itself
to run a small statement. The writer runs its batch's statements one after the other
(Start and Stop alone take 10-15 each), so those hops were most of a batch's time and a
good part of the CPU (docs/performance.md, "Sessions under load").

`InlineConnection` runs statements on the calling thread. What can wait still goes to
aiosqlite's thread, so the event loop never blocks on a lock or a disk flush:
- `BEGIN IMMEDIATE` (the writer's engine begins every transaction so, see `inline_engine`)
  waits up to the busy timeout for another process's write lock;
- `COMMIT` and `ROLLBACK` may run a WAL checkpoint, which writes and fsyncs the database.
Between the two, this connection holds SQLite's write lock: no statement can wait for a
lock (in WAL mode readers never block the writer, https://sqlite.org/wal.html §2.2).
Reads elsewhere keep aiosqlite's thread: an API page may take longer than a write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_WAITS = ("BEGIN",)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the event loop's thread (see above)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        # aiosqlite's cursor passes the SQL text first: a BEGIN may wait for a lock.
        if args and isinstance(args[0], str) and args[0].lstrip()[:5].upper() in _WAITS:
            return await self._on_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _on_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        on_thread: Callable[..., Awaitable[Any]] = super()._execute
        return await on_thread(fn, *args, **kwargs)

    async def commit(self) -> None:
        if self._conn.in_transaction:
            await self._on_thread(self._conn.commit)

    async def rollback(self) -> None:
        if self._conn.in_transaction:
            await self._on_thread(self._conn.rollback)


def _connect(database: str, **kwargs: Any) -> InlineConnection:
    # Opened on aiosqlite's thread, then used from the event loop's (never both at once:
    # each call is awaited before the next).
    kwargs["check_same_thread"] = False
    # Transactions are begun explicitly (BEGIN IMMEDIATE), not by the sqlite3 module.
    kwargs["isolation_level"] = None
    connection = InlineConnection(partial(sqlite3.connect, database, **kwargs), 64)
    connection._thread.daemon = True
    return connection


def inline_engine(url: str, **options: Any) -> AsyncEngine:
    """An engine for the writer whose transactions take SQLite's write lock at BEGIN."""
    connect_args = dict(options.pop("connect_args", {}))
    connect_args["async_creator_fn"] = _connect
    engine = create_async_engine(url, connect_args=connect_args, **options)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _begin_immediate(connection: Connection) -> None:
    # Taken at BEGIN, on aiosqlite's thread: later statements cannot meet SQLITE_BUSY.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
