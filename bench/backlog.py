"""csms's outbox while a load runs: how many events wait, how old the oldest is, the drain.

The watcher polls the outbox table from this runner (core 1) every 100 ms: rows with no
`delivered_at` (the relay sets it after the broker's PUBACK) and their oldest `created_at`
(when csms received the message that caused the event). Its PostgreSQL backend is left out
of csms's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from processes import Database

POLL_S = 0.1
PENDING_SQL = "select count(*), min(created_at) from outbox_events where delivered_at is null"


class OutboxReader(Protocol):
    async def read(self) -> tuple[int, datetime | None]: ...

    async def close(self) -> None: ...


class SqliteReader:
    """A read-only connection: in WAL mode it never waits for csms's writer."""

    def __init__(self, database: Database) -> None:
        uri = f"file:{database.sqlite_path}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)

    async def read(self) -> tuple[int, datetime | None]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> tuple[int, datetime | None]:
        rows, oldest = self._db.execute(PENDING_SQL).fetchone()
        # csms keeps naive UTC text in SQLite (csms/store/tables/columns.py UTCDateTime).
        when = None if oldest is None else datetime.fromisoformat(oldest).replace(tzinfo=UTC)
        return int(rows), when

    async def close(self) -> None:
        self._db.close()


class PostgresReader:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, database: Database) -> PostgresReader:
        import asyncpg  # a csms dependency; only needed here for PostgreSQL

        connection = await asyncpg.connect(database.pg_dsn)
        database.observer_pids.add(await connection.fetchval("select pg_backend_pid()"))
        return cls(connection)

    async def read(self) -> tuple[int, datetime | None]:
        row = await self._connection.fetchrow(PENDING_SQL)
        return int(row[0]), row[1]

    async def close(self) -> None:
        await self._connection.close()


@dataclass(frozen=True)
class OutboxFigures:
    max_rows: int  # most undelivered events seen between window start and load end
    max_age_s: float  # oldest undelivered event's age, at its worst over the same time
    drained_s: float | None  # load end -> empty outbox; None when it did not empty in time


class OutboxWatch:
    """Polls the outbox; the scenario tells it when the window starts and the load ends."""

    def __init__(self, reader: OutboxReader) -> None:
        self._reader = reader
        self._watching = False
        self._load_end: float | None = None
        self._drained_at: float | None = None
        self._empty = asyncio.Event()
        self._stopped = False
        self.max_rows = 0
        self.max_age_s = 0.0

    def window_started(self) -> None:
        self._watching = True

    def load_ended(self) -> None:
        self._load_end = time.perf_counter()

    def stop(self) -> None:
        self._stopped = True

    async def poll(self) -> None:
        while not self._stopped:
            rows, oldest = await self._reader.read()
            now = time.perf_counter()
            if self._load_end is None and self._watching:
                self.max_rows = max(self.max_rows, rows)
                if oldest is not None:
                    age = (datetime.now(UTC) - oldest).total_seconds()
                    self.max_age_s = max(self.max_age_s, age)
            elif self._load_end is not None and rows == 0:
                self._drained_at = now
                self._empty.set()
                return
            await asyncio.sleep(POLL_S)

    async def figures(self, *, drain_limit_s: float) -> OutboxFigures:
        """After the load ended: wait up to `drain_limit_s` for an empty outbox; the figures."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), drain_limit_s)
        drained = None
        if self._drained_at is not None and self._load_end is not None:
            drained = self._drained_at - self._load_end
        return OutboxFigures(self.max_rows, self.max_age_s, drained)


@contextlib.asynccontextmanager
async def watch_outbox(database: Database) -> AsyncIterator[OutboxWatch]:
    """Poll csms's outbox (csms must be up: the table exists) until the block ends."""
    reader: OutboxReader
    if database.kind == "sqlite":
        reader = SqliteReader(database)
    else:
        reader = await PostgresReader.open(database)
    watch = OutboxWatch(reader)
    task = asyncio.create_task(watch.poll())
    try:
        yield watch
    finally:
        # Not cancelled: a read may be running in a thread, on the connection about to close.
        watch.stop()
        await task
        await reader.close()
