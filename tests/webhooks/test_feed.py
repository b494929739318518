"""The webhook workers' outbox reads (csms/store/webhooks_feed.py): inline on SQLite, fresh
after every commit, and never stalling the event loop on a locked database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from uuid import uuid4

import orjson
import pytest
from sqlalchemy.engine import make_url

from csms.core.events import Event
from csms.store import outbox
from csms.store.db import Database
from csms.store.webhooks_feed import OutboxFeed

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    writer = asyncio.create_task(db.writer.run())
    yield db
    db.writer.close()
    await writer
    await db.dispose()


@pytest.fixture
async def feed(database: Database) -> AsyncIterator[OutboxFeed]:
    reader = OutboxFeed(database)
    yield reader
    await reader.close()


async def _write(database: Database, count: int, charger: str = "CP-F") -> None:
    events = [
        Event(id=uuid4(), charge_point_id=charger, type="meter.values", time=NOW, data={"n": n})
        for n in range(count)
    ]
    await database.writer.submit(partial(outbox.add_events, events=events, now=NOW))


@pytest.mark.postgres
async def test_reads_what_each_commit_added_in_order(
    database: Database, feed: OutboxFeed, backend: str
) -> None:
    assert feed.inline is (backend == "sqlite")
    await _write(database, 3)
    first = await feed.after(after=0, limit=10)
    assert [orjson.loads(row.data) for row in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [row.id for row in first] == sorted(row.id for row in first)
    # A later commit is seen by the next read: no snapshot is held between reads.
    await _write(database, 2)
    second = await feed.after(after=first[-1].id, limit=10)
    assert len(second) == 2
    assert second[0].id > first[-1].id
    assert await feed.after(after=second[-1].id, limit=10) == []
    assert len(await feed.after(after=0, limit=4)) == 4


async def test_in_memory_sqlite_reads_through_the_database() -> None:
    # One database per connection: a second engine would read another, empty database.
    assert not OutboxFeed(Database("sqlite+aiosqlite://")).inline
    assert not OutboxFeed(Database("sqlite+aiosqlite:///:memory:")).inline


@asynccontextmanager
async def locked(
    database: Database, feed: OutboxFeed, database_url: str
) -> AsyncIterator[sqlite3.Connection]:
    """Two events written, the feed's pooled connection open, and another connection
    holding an EXCLUSIVE lock on the file (released by the caller with COMMIT)."""
    await _write(database, 2)
    path = make_url(database_url).database
    assert path is not None
    # In WAL mode readers never meet a lock; in rollback-journal mode an EXCLUSIVE lock
    # holds them off, which is how a reader's rare SQLITE_BUSY is made to happen here.
    await database.dispose()
    holder = sqlite3.connect(Path(path), isolation_level=None, check_same_thread=False)
    try:
        assert holder.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
        # Opens the feed's pooled connection, so the next read goes straight to the lock.
        assert len(await feed.after(after=0, limit=10)) == 2
        holder.execute("BEGIN EXCLUSIVE")
        yield holder
    finally:
        holder.close()


async def test_a_locked_database_is_waited_for_off_the_event_loop(
    database: Database, feed: OutboxFeed, database_url: str
) -> None:
    """An inline read that meets SQLITE_BUSY waits on aiosqlite's thread: the loop goes on
    (here: it releases the lock), and the read then returns the rows."""
    async with locked(database, feed, database_url) as holder:
        read = asyncio.create_task(feed.after(after=0, limit=10))
        # Runs only when the loop is free: an inline read waiting for the lock would hold
        # the loop, the lock would never be released, and the read would fail.
        asyncio.get_running_loop().call_soon(holder.execute, "COMMIT")
        async with asyncio.timeout(20):
            rows = await read
        assert len(rows) == 2


async def test_a_read_cancelled_while_waiting_for_a_lock_is_cancelled(
    database: Database, feed: OutboxFeed, database_url: str
) -> None:
    """The cancellation reaches the caller (not a StoreError), the read still on the thread
    finishes before its connection is closed or reused, and the next read works."""
    async with locked(database, feed, database_url) as holder:
        read = asyncio.create_task(feed.after(after=0, limit=10))
        loop = asyncio.get_running_loop()
        loop.call_soon(read.cancel)  # after the read went to the thread to wait
        loop.call_soon(holder.execute, "COMMIT")
        async with asyncio.timeout(20):
            with pytest.raises(asyncio.CancelledError):
                await read
            assert len(await feed.after(after=0, limit=10)) == 2
