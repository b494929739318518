"""The group reads of csms.store.tariffs: the same answers as their one-by-one forms, and
on PostgreSQL one statement text whatever the group's size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store import tariffs
from csms.store.db import Database
from csms.store.tables import (
    StatusNotification,
    TariffAssignment,
    Transaction,
    TransactionPricing,
)

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 1, 1, 10, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


async def _setup(session: AsyncSession) -> list[int]:
    """Six stopped transactions on three connectors of two chargers, with statuses before,
    at, during, at the stop of and after each (and none before the first's start)."""
    spans = [
        ("A", 1, 10, 20),
        ("A", 1, 30, 40),
        ("A", 2, 10, 50),
        ("B", 1, 5, 6),
        ("B", 1, 6, 9),
        ("A", 1, 0, 3),
    ]
    rows = [
        Transaction(
            charge_point_id=cp,
            connector_id=connector,
            meter_start=0,
            start_timestamp=at(start),
            stop_timestamp=at(stop),
            meter_stop=100,
            charger_stopped=True,
        )
        for cp, connector, start, stop in spans
    ]
    session.add_all(rows)
    statuses = [
        ("A", 1, 1, "Preparing"),
        ("A", 1, 10, "Charging"),
        ("A", 1, 10, "SuspendedEV"),
        ("A", 1, 15, "Charging"),
        ("A", 1, 20, "Finishing"),
        ("A", 1, 25, "Available"),
        ("A", 1, 35, "Faulted"),
        ("A", 2, 2, "Available"),
        ("A", 2, 4, "Preparing"),
        ("A", 2, 51, "Available"),
        ("B", 1, 5, "Preparing"),
        ("B", 1, 6, "Charging"),
        ("B", 1, 8, "Finishing"),
        ("B", 2, 7, "Faulted"),
    ]
    session.add_all(
        StatusNotification(
            charge_point_id=cp,
            connector_id=connector,
            status=status,
            error_code="NoError",
            timestamp=at(minute),
            received_at=at(minute),
        )
        for cp, connector, minute, status in statuses
    )
    await session.flush()
    return [row.id for row in rows if row.id is not None]


async def test_connector_statuses_of_equals_connector_statuses(database: Database) -> None:
    ids = await database.writer.submit(_setup)
    async with database.sessions() as session:
        together = await tariffs.connector_statuses_of(session, ids)
        for tid in ids:
            row = await session.get_one(Transaction, tid)
            assert row.start_timestamp is not None
            assert row.stop_timestamp is not None
            alone = await tariffs.connector_statuses(
                session,
                charge_point_id=row.charge_point_id,
                connector_id=row.connector_id,
                start=row.start_timestamp,
                stop=row.stop_timestamp,
            )
            assert together[tid] == alone, tid
        # The last status at the start (of two at one time, the later received), then those
        # up to the stop.
        assert together[ids[0]] == [
            (at(10), "SuspendedEV"),
            (at(15), "Charging"),
            (at(20), "Finishing"),
        ]
        assert together[ids[5]] == [(at(1), "Preparing")]
        assert await tariffs.connector_statuses_of(session, []) == {}


async def test_pricing_and_assignments_of_groups(database: Database) -> None:
    async def setup(session: AsyncSession) -> list[int]:
        ids = await _setup(session)
        session.add_all(
            TransactionPricing(transaction_id=tid, currency="EUR", created_at=T0) for tid in ids[:3]
        )
        session.add_all(
            [
                TariffAssignment(scope="charger", target="A", tariff_id="t1", updated_at=T0),
                TariffAssignment(scope="evse", target="A*1", tariff_id="t2", updated_at=T0),
                TariffAssignment(scope="location", target="A", tariff_id="t3", updated_at=T0),
            ]
        )
        await session.flush()
        return ids

    ids = await database.writer.submit(setup)
    async with database.sessions() as session:
        assert set(await tariffs.pricing_of(session, ids)) == set(ids[:3])
        assert await tariffs.pricing_of(session, []) == {}
        keys = [("charger", "A"), ("evse", "A*1"), ("charger", "A*1"), ("evse", "A"), ("x", "y")]
        assert await tariffs.assignments_of(session, keys) == {
            ("charger", "A"): "t1",
            ("evse", "A*1"): "t2",
            ("charger", "A*1"): None,
            ("evse", "A"): None,
            ("x", "y"): None,
        }


async def test_group_reads_are_one_statement_whatever_the_size(database: Database) -> None:
    """On PostgreSQL each read is one statement text for any number of keys (no expanding
    IN: asyncpg would prepare one per size, bench/analysis.md P6 "J")."""
    ids = await database.writer.submit(_setup)
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sync_engine = database.engine.sync_engine
    sa_event.listen(sync_engine, "before_cursor_execute", record)
    try:
        async with database.sessions() as session:
            for size in (1, 2, 5):
                await tariffs.pricing_of(session, ids[:size])
                await tariffs.connector_statuses_of(session, ids[:size])
                keys = [("charger", f"C{n}") for n in range(size)]
                await tariffs.assignments_of(session, keys)
    finally:
        sa_event.remove(sync_engine, "before_cursor_execute", record)
    assert len(seen) == 9
    distinct = len(set(seen))
    assert distinct == (3 if database.url.startswith("postgresql") else 9)
