"""SQLite's writer: statements on the event loop's thread, waits for the write lock off it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store import registry
from csms.store.db import Database

NOW = datetime(2024, 1, 1, tzinfo=UTC)
S = 1.0


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")
    await db.migrate()
    writer = asyncio.create_task(db.writer.run())
    try:
        yield db
    finally:
        db.writer.close()
        await writer
        await db.dispose()


async def test_statements_run_on_the_event_loop_thread(database: Database) -> None:
    """A job's statements run on the loop's thread (no hop to aiosqlite's), and commit."""
    threads: list[int] = []

    async def job(session: AsyncSession) -> bool:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.set_trace_callback(
            lambda _sql: threads.append(threading.get_ident())
        )
        created = await registry.upsert_id_tag(
            session, id_tag="TAG", values={"status": "Accepted"}, now=NOW
        )
        await raw.driver_connection.set_trace_callback(None)
        return created

    assert await database.writer.submit(job)
    assert threads
    assert set(threads) == {threading.get_ident()}
    status = await database.read(lambda s: registry.authorize_id_tag(s, id_tag="TAG", now=NOW))
    assert status.status.value == "Accepted"


async def test_waiting_for_the_write_lock_does_not_block_the_loop(
    database: Database, tmp_path: Path
) -> None:
    """While another process holds SQLite's write lock, the writer waits and the loop runs."""
    other = sqlite3.connect(tmp_path / "csms.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO users (id, name, created_at, updated_at) VALUES ('u', 'u', 0, 0)")

    async def job(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT count(*) FROM users"))).scalar_one())

    pending = asyncio.create_task(database.writer.submit(job))
    # The loop keeps turning while the writer waits for the lock.
    for _ in range(200):
        await asyncio.sleep(0)
    assert not pending.done()
    other.execute("COMMIT")
    other.close()
    async with asyncio.timeout(10 * S):
        assert await pending == 1
