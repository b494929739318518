"""SQLite's writer: statements on the event loop's thread, waits for the write lock off it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store import chargers, registry
from csms.store.commands import _select_target
from csms.store.db import Database, create_engine
from csms.store.sqlite_inline import CHECKPOINT_EVERY, InlineBusy, InlineReader
from csms.store.tables import ChargePoint, table_of
from tests.support import writing

NOW = datetime(2024, 1, 1, tzinfo=UTC)
S = 1.0


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with writing(Database(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")) as db:
        yield db


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


async def test_commits_on_the_loop_thread_checkpoints_off_it(database: Database) -> None:
    """Commits run on the loop's thread; every CHECKPOINT_EVERY commits a WAL checkpoint
    runs on a thread and a connection of its own (the writer does not wait for it), and the
    commit after it (which may sync the WAL's header) on aiosqlite's thread."""
    seen: list[tuple[str, int]] = []
    loop = asyncio.get_running_loop()
    checkpointed = asyncio.Event()

    def checkpoint_trace(sql: str) -> None:
        seen.append((sql.strip().upper(), threading.get_ident()))
        loop.call_soon_threadsafe(checkpointed.set)

    async def trace(session: AsyncSession) -> None:
        raw = await (await session.connection()).get_raw_connection()
        raw.driver_connection.checkpoint_trace = checkpoint_trace
        drivers.append(raw.driver_connection)
        await raw.driver_connection.set_trace_callback(
            lambda sql: seen.append((sql.strip().upper(), threading.get_ident()))
        )

    def write(n: int) -> Any:
        return lambda session: registry.upsert_id_tag(
            session, id_tag=f"T{n}", values={"status": "Accepted"}, now=NOW
        )

    drivers: list[Any] = []
    await database.writer.submit(trace)
    [driver] = drivers
    for n in range(CHECKPOINT_EVERY + 2):
        await database.writer.submit(write(n))
    async with asyncio.timeout(10 * S):
        await checkpointed.wait()
        await driver.checkpointed()
    # The checkpoint is not awaited by the writer: commits after it see it done.
    for n in range(CHECKPOINT_EVERY + 2, CHECKPOINT_EVERY + 4):
        await database.writer.submit(write(n))
    this_thread = threading.get_ident()
    checkpoints = [thread for sql, thread in seen if "WAL_CHECKPOINT" in sql]
    commits = [thread for sql, thread in seen if sql == "COMMIT"]
    assert checkpoints
    assert this_thread not in checkpoints
    assert len(commits) >= CHECKPOINT_EVERY
    off_loop = [thread for thread in commits if thread != this_thread]
    assert 1 <= len(off_loop) <= len(checkpoints)


def _target_of(reader: InlineReader, charge_point_id: str) -> tuple[object, ...] | None:
    return reader.first(_select_target(), {"cp": charge_point_id})


async def test_a_small_read_runs_on_the_calling_thread_without_waiting(
    database: Database, tmp_path: Path
) -> None:
    """`InlineReader` is synchronous (no aiosqlite thread hop); in WAL mode it reads the
    last commit, and does not wait while another connection holds the write lock."""
    reader = InlineReader.for_engine(database.engine)
    assert reader is not None
    try:
        await database.writer.submit_bulk(chargers.registration(charge_point_id="CP-1", now=NOW))
        assert _target_of(reader, "CP-1") is not None
        assert _target_of(reader, "CP-NONE") is None
        other = sqlite3.connect(tmp_path / "csms.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE charge_points SET security_profile = 3 WHERE id = 'CP-1'")
        # Not waiting for the lock, and not seeing what is not committed.
        found = _target_of(reader, "CP-1")
        assert found is not None
        assert found[1] == 0
        other.execute("COMMIT")
        other.close()
        found = _target_of(reader, "CP-1")
        assert found is not None
        assert found[1] == 3
    finally:
        reader.close()


def test_a_read_that_would_wait_says_so(tmp_path: Path) -> None:
    """Where even a WAL reader would wait (another connection holds the database in
    exclusive locking mode), `InlineReader` raises `InlineBusy` at once, and the caller
    reads the usual way (`Database.read_first`)."""
    path = tmp_path / "locked.db"
    other = sqlite3.connect(path, isolation_level=None)
    reader = InlineReader(str(path), uri=False)
    try:
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("PRAGMA locking_mode = EXCLUSIVE")
        other.execute(
            "CREATE TABLE charge_points (id TEXT, registration_status TEXT, "
            "security_profile INTEGER)"
        )
        with pytest.raises(InlineBusy):
            _target_of(reader, "CP-1")
    finally:
        other.close()
        reader.close()


def test_no_inline_reader_for_a_database_in_memory() -> None:
    """Another connection would see another database."""
    assert InlineReader.for_engine(create_engine("sqlite+aiosqlite:///:memory:")) is None


async def test_a_small_read_leaves_no_read_transaction_open(
    database: Database, tmp_path: Path
) -> None:
    """The first row of many read, the statement is done with: no snapshot is kept, so a
    checkpoint can copy the whole WAL (a reader still open would hold it back)."""
    reader = InlineReader.for_engine(database.engine)
    assert reader is not None
    try:
        for cp in ("CP-1", "CP-2", "CP-3"):
            await database.writer.submit_bulk(chargers.registration(charge_point_id=cp, now=NOW))
        table = table_of(ChargePoint)
        assert reader.first(select(table.c.id).where(table.c.id != bindparam("cp")), {"cp": ""})
        other = sqlite3.connect(tmp_path / "csms.db", isolation_level=None)
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        other.close()
        assert busy == 0
    finally:
        reader.close()
