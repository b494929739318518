"""The store: migrations produce exactly the tables' schema; the group-commit writer."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from csms.core.clock import ParsedTime
from csms.core.events import Event
from csms.core.meter import Sample
from csms.core.transactions import CdrStep, StopRequest, cdr_step
from csms.errors import StoreError
from csms.metrics import Metrics
from csms.store import chargers, outbox, registry, samples, transactions
from csms.store import transactions_bulk as bulk
from csms.store.db import BulkWrite, Database
from csms.store.tables import ChargePoint, IdTag, MeterValue, OutboxEvent, Transaction
from tests.support import drop_connections, writing

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrations_match_the_tables(database: Database) -> None:
    """After `migrate`, autogenerate finds nothing to change: models and migrations agree."""
    async with database.engine.connect() as connection:
        assert await connection.run_sync(_diff) == []


def _schema(connection: Connection) -> tuple[list[str], set[str]]:
    """The revisions in alembic_version and the names of the tables."""
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return list(versions), set(inspect(connection).get_table_names())


async def test_migrate_twice_is_harmless(database: Database) -> None:
    """Migrating again (every start-up does) keeps the head revision and the same tables."""
    head = ScriptDirectory(str(files("csms.store") / "migrations")).get_current_head()
    async with database.engine.connect() as connection:
        before = await connection.run_sync(_schema)
    await database.migrate()
    async with database.engine.connect() as connection:
        versions, tables = await connection.run_sync(_schema)
    assert head is not None
    assert versions == [head]
    assert tables == {*SQLModel.metadata.tables, "alembic_version"}
    assert (versions, tables) == before


def _tag(tag: str) -> Any:
    async def job(session: AsyncSession) -> bool:
        return await registry.upsert_id_tag(
            session, id_tag=tag, values={"status": "Accepted"}, now=NOW
        )

    return job


async def _explode(session: AsyncSession) -> None:
    await registry.upsert_id_tag(session, id_tag="BOOM", values={"status": "Accepted"}, now=NOW)
    raise ValueError("a job that fails")


async def test_a_failing_job_does_not_sink_its_batch(database: Database) -> None:
    """Jobs in one batch: one fails, the others still commit; the failure reaches its caller."""
    results = await asyncio.gather(
        database.writer.submit(_tag("A")),
        database.writer.submit(_explode),
        database.writer.submit(_tag("B")),
        return_exceptions=True,
    )
    assert results[0] is True
    assert isinstance(results[1], ValueError)
    assert results[2] is True
    async with database.sessions() as session:
        tags = (await session.execute(select(IdTag.id_tag).order_by(IdTag.id_tag))).scalars().all()
    assert list(tags) == ["A", "B"]


async def test_many_writes_share_commits(database: Database) -> None:
    """Hundreds of concurrent writes all commit (group commit), each caller awaiting its own."""
    await asyncio.gather(*(database.writer.submit(_tag(f"T{n:04d}")) for n in range(500)))
    async with database.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(IdTag))).scalar_one()
    assert total == 500


@pytest.mark.postgres_only
async def test_the_writer_replaces_a_dropped_connection(database: Database) -> None:
    """The writer's connection is not pinged before each batch: one the database dropped
    between two batches fails the next, which runs again on a new connection and commits;
    its caller never hears of it."""
    assert await database.writer.submit(_tag("BEFORE")) is True
    assert await drop_connections(database) >= 1
    results = await asyncio.gather(*(database.writer.submit(_tag(f"AFTER{n}")) for n in range(3)))
    assert results == [True, True, True]
    async with database.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(IdTag))).scalar_one()
    assert total == 4


async def test_closed_writer_refuses_jobs(database: Database) -> None:
    """After close, queued jobs finish and new ones get StoreError."""
    queued = asyncio.create_task(database.writer.submit(_tag("LAST")))
    await asyncio.sleep(0)
    database.writer.close()
    assert await queued is True
    with pytest.raises(StoreError):
        await database.writer.submit(_tag("LATE"))


async def test_bulk_writes_store_what_the_orm_reads_back(database: Database) -> None:
    """Bulk writes (driver SQL, own converters) keep UTC instants, JSON and literals intact."""
    at = datetime(2024, 1, 1, 10, 0, 0, 120000, tzinfo=UTC)
    sample = Sample(
        timestamp=at,
        value="1234.5",
        measurand="Energy.Active.Import.Register",
        unit="Wh",
        context="Sample.Periodic",
        location="Outlet",
        phase="",
        format="Raw",
        flags=("late",),
    )
    event = Event(
        id=uuid4(),
        charge_point_id="CP-BULK",
        type="meter.values",
        time=at,
        data={"n": 1, "text": "ä", "nested": [1.5, None]},
    )
    write = samples.store_samples(
        charge_point_id="CP-BULK",
        connector_id=1,
        claimed_transaction_id=None,
        samples=[sample],
        now=NOW,
    )
    await database.writer.submit_bulk(
        BulkWrite(steps=(*write.steps, outbox.event_step(event, now=NOW)))
    )
    async with database.sessions() as session:
        stored = (await session.execute(select(MeterValue))).scalars().one()
        row = (await session.execute(select(OutboxEvent))).scalars().one()
    assert (stored.timestamp, stored.received_at, stored.value) == (at, NOW, "1234.5")
    assert (stored.flags, stored.transaction_id, stored.phase) == (["late"], None, "")
    assert (row.event_id, row.time, row.created_at) == (str(event.id), at, NOW)
    assert row.data == event.data


def _meter_sample(
    at: datetime, value: str, measurand: str = "Energy.Active.Import.Register"
) -> Any:
    return Sample(
        timestamp=at,
        value=value,
        measurand=measurand,
        unit="Wh",
        context="Sample.Periodic",
        location="Outlet",
        phase="",
        format="Raw",
    )


async def _batch_scenario(database: Database, cp: str, *, together: bool) -> dict[str, Any]:
    """A batch's worth of bulk writes for charger `cp`: submitted at once (one batch, where
    PostgreSQL runs each statement once for all rows) or one after the other; what they
    stored, by charger-independent keys."""
    open_tx, stopped_tx = (
        Transaction(charge_point_id=cp, connector_id=1, start_timestamp=at_minute(0), flags=[]),
        Transaction(
            charge_point_id=cp,
            connector_id=2,
            start_timestamp=at_minute(0),
            stop_timestamp=at_minute(5),
            flags=[],
        ),
    )

    async def setup(session: AsyncSession) -> tuple[int, int]:
        session.add(ChargePoint(id=cp))
        session.add_all([open_tx, stopped_tx])
        await session.flush()
        assert open_tx.id is not None
        assert stopped_tx.id is not None
        return open_tx.id, stopped_tx.id

    tx_open, tx_stopped = await database.writer.submit(setup)

    def meter(connector: int, claimed: int | None, sampled: list[Any]) -> BulkWrite:
        write = samples.store_samples(
            charge_point_id=cp,
            connector_id=connector,
            claimed_transaction_id=claimed,
            samples=sampled,
            now=NOW,
        )
        return write

    def event(n: int) -> BulkWrite:
        step = outbox.event_step(
            Event(id=uuid4(), charge_point_id=cp, type="meter.values", time=NOW, data={"n": n}),
            now=NOW,
        )
        return BulkWrite(steps=(step,))

    writes = [
        # Claimed and this charger's: linked to it; the register moves to 110.
        meter(1, tx_open, [_meter_sample(at_minute(1), "110")]),
        event(1),
        # No transactionId: linked by connector and time; the same transaction, later: 120.
        meter(1, None, [_meter_sample(at_minute(2), "120")]),
        chargers.seen(charge_point_id=cp, now=at_minute(1)),
        # An exact repeat of the first sample: kept once.
        meter(1, tx_open, [_meter_sample(at_minute(1), "110")]),
        event(2),
        # After the stopped transaction's stop: flagged; before it: not; no register move.
        meter(
            2, tx_stopped, [_meter_sample(at_minute(6), "60"), _meter_sample(at_minute(4), "40")]
        ),
        # Connector 0 belongs to no transaction; an unknown claimed id links by time (none).
        meter(0, None, [_meter_sample(at_minute(3), "7", "Voltage")]),
        meter(3, 999_999, [_meter_sample(at_minute(3), "8", "Voltage")]),
        chargers.seen(charge_point_id=cp, now=at_minute(3)),
        event(3),
    ]
    if together:
        await asyncio.gather(*(database.writer.submit_bulk(w) for w in writes))
    else:
        for write in writes:
            await database.writer.submit_bulk(write)
    names = {tx_open: "open", tx_stopped: "stopped", None: None}
    async with database.sessions() as session:
        stored = (
            await session.execute(
                select(MeterValue).where(MeterValue.charge_point_id == cp).order_by(MeterValue.id)
            )
        ).scalars()
        rows = [
            (s.connector_id, names[s.transaction_id], s.timestamp, s.value, s.after_stop)
            for s in stored
        ]
        registers = {
            names[t.id]: t.last_register_wh
            for t in (
                await session.execute(select(Transaction).where(Transaction.charge_point_id == cp))
            ).scalars()
        }
        events = [
            e.data["n"]
            for e in (
                await session.execute(
                    select(OutboxEvent)
                    .where(OutboxEvent.charge_point_id == cp)
                    .order_by(OutboxEvent.id)
                )
            ).scalars()
        ]
        last_seen = (await session.get(ChargePoint, cp)).last_seen  # type: ignore[union-attr]
    return {"rows": rows, "registers": registers, "events": events, "last_seen": last_seen}


def at_minute(minute: int) -> datetime:
    return datetime(2024, 1, 1, 10, minute, tzinfo=UTC)


async def test_a_batch_stores_what_its_writes_one_by_one_store(database_url: str) -> None:
    """Bulk writes committed in one batch (on PostgreSQL one statement per table for all
    of them) store exactly what they store one batch each: links, after-stop flags,
    repeats kept once, the last register and last-seen time, the events in order."""
    metrics = Metrics()
    async with writing(Database(database_url, metrics=metrics)) as database:
        together = await _batch_scenario(database, "CP-TOGETHER", together=True)
        apart = await _batch_scenario(database, "CP-APART", together=False)
    # No batch failed and was split: the one with every write committed as one.
    assert metrics.registry.get_sample_value("csms_db_batch_splits_total") == 0
    assert together == apart
    # The repeat came last: its register (110) is the last written, as one by one.
    assert together["registers"] == {"open": 110.0, "stopped": None}
    assert together["events"] == [1, 2, 3]
    assert together["last_seen"] == at_minute(3)
    assert [(c, tx, after) for c, tx, _, _, after in together["rows"]] == [
        (1, "open", False),
        (1, "open", False),
        (2, "stopped", True),
        (2, "stopped", False),
        (0, None, False),
        (3, None, False),
    ]


async def test_a_batch_of_events_goes_in_as_driver_sql(database: Database) -> None:
    """The outbox insert runs on the compiled driver path (`execute_many`): on PostgreSQL
    one statement for the batch's events (its set form), on SQLite one executemany of the
    driver SQL; never SQLAlchemy's per-row executemany, which a column default computed in
    Python (`relay_state`'s) had brought back for every event."""
    seen: list[tuple[str, bool]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX_EVENTS"):
            seen.append((statement, context.compiled is not None))

    sync_engine = database.write_engine.sync_engine
    sa_event.listen(sync_engine, "before_cursor_execute", record)
    try:
        writes = [
            BulkWrite(
                steps=(
                    outbox.event_step(
                        Event(
                            id=uuid4(),
                            charge_point_id=f"CP-{n}",
                            type="meter.values",
                            time=NOW,
                            data={"n": n},
                        ),
                        now=NOW,
                    ),
                )
            )
            for n in range(3)
        ]
        await asyncio.gather(*(database.writer.submit_bulk(w) for w in writes))
    finally:
        sa_event.remove(sync_engine, "before_cursor_execute", record)
    assert seen, "no outbox insert seen"
    assert not [statement for statement, compiled in seen if compiled]
    if database.url.startswith("postgresql"):
        assert len(seen) == 1
        assert "unnest" in seen[0][0]
    async with database.sessions() as session:
        stored = (await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars()
        assert [(e.data["n"], e.relay_state) for e in stored] == [(0, 0), (1, 0), (2, 0)]


async def _stop_scenario(database: Database, cp: str, *, together: bool) -> list[Any]:
    """Four open transactions of `cp` stopped in one job, by `write_stops` or, as before it,
    each row changed in the session (`stop_values`, `mark_cdrs`) and flushed; the rows as
    stored, and whether the session's rows held the same values."""
    starts = [at_minute(10), at_minute(10), at_minute(30), at_minute(10)]
    # The fourth was stopped by csms already, with an estimated CDR (its correction is due).
    flags: list[list[str]] = [[], ["future_start"], [], ["cdr_created", "cdr_estimated"]]
    stops = [
        StopRequest(cp, 0, "TAG", 1500, ParsedTime(at_minute(20)), None, ()),
        StopRequest(cp, 0, None, None, ParsedTime(at_minute(21), future=True), "Remote", ()),
        # Stopped before it started: no CDR.
        StopRequest(cp, 0, "TAG", 1200, ParsedTime(at_minute(20)), "EVDisconnected", ()),
        StopRequest(cp, 0, "TAG", 1800, ParsedTime(at_minute(25)), "Local", ()),
    ]

    async def setup(session: AsyncSession) -> list[int]:
        rows = [
            Transaction(
                charge_point_id=cp,
                connector_id=n + 1,
                meter_start=1000,
                start_timestamp=start,
                stop_timestamp=at_minute(15) if n == 3 else None,
                flags=flags[n],
            )
            for n, start in enumerate(starts)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows if row.id is not None]

    ids = await database.writer.submit(setup)

    async def stop(session: AsyncSession) -> list[Any]:
        rows = [await session.get_one(Transaction, tid) for tid in ids]
        if together:
            writes = [
                bulk.stop_write(row, request=replace(s, transaction_id=row.id), now=NOW)
                for row, s in zip(rows, stops, strict=True)
            ]
            await bulk.write_stops(session, writes)
            steps = [w.step for w in writes]
        else:
            steps = []
            for row, s in zip(rows, stops, strict=True):
                for name, value in transactions.stop_values(row, request=s, now=NOW).items():
                    setattr(row, name, value)
                steps.append(
                    cdr_step(
                        started_at=row.start_timestamp,
                        stopped_at=row.stop_timestamp,
                        charger_stopped=row.charger_stopped,
                        flags=row.flags,
                    )
                )
                transactions.mark_cdrs(row, step=steps[-1], estimated_cdr=None, now=NOW)
            await session.flush()
        return [steps, [_stop_columns(row) for row in rows]]

    steps, in_session = await database.writer.submit(stop)
    async with database.sessions() as session:
        stored = [_stop_columns(await session.get_one(Transaction, tid)) for tid in ids]
    assert in_session == stored
    return [steps, stored]


def _stop_columns(row: Transaction) -> tuple[Any, ...]:
    return (
        row.connector_id,
        row.meter_stop,
        row.stop_timestamp,
        row.stop_reason,
        row.stop_id_tag,
        row.charger_stopped,
        row.flags,
        row.updated_at,
        row.estimated_cdr,
    )


async def test_stops_written_together_store_what_the_flush_stored(database: Database) -> None:
    """`write_stops` (on PostgreSQL one UPDATE ... FROM unnest for the group's Stops) stores
    what the rows changed in the session and flushed stored, flags and CDR marks included,
    and leaves the session's rows as stored."""
    together = await _stop_scenario(database, "CP-STOP-TOGETHER", together=True)
    apart = await _stop_scenario(database, "CP-STOP-APART", together=False)
    assert together == apart
    steps, stored = together
    assert steps == [CdrStep.FIRST, CdrStep.FIRST, CdrStep.NONE, CdrStep.CORRECTION]
    assert [row[6] for row in stored] == [
        ["cdr_created"],
        ["future_start", "future_stop", "unreadable_meter_stop", "cdr_created"],
        ["stop_before_start"],
        ["cdr_created", "cdr_estimated", "cdr_corrected"],
    ]
