"""Migration 0003_tx_flags on a database that already holds transactions and samples."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from importlib.resources import files

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, select, text

from csms.core.transactions import StartKey
from csms.store import samples, transactions
from csms.store.db import Database
from csms.store.tables import MeterValue

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)
KEY = StartKey(
    charge_point_id="CP-OLD",
    connector_id=1,
    id_tag="TAG",
    timestamp=datetime(2000, 1, 1, tzinfo=UTC),
    meter_start=0,
)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("csms.store") / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _rows_at_0002(connection: Connection) -> None:
    """A transaction the charger stopped at 09:00, with samples before and after the stop."""
    connection.execute(
        text(
            "INSERT INTO transactions (charge_point_id, connector_id, id_tag, meter_start,"
            " start_timestamp, meter_stop, stop_timestamp, charger_stopped, flags)"
            " VALUES ('CP-OLD', 1, 'TAG', 0, :start, 2000, :stop, true, '[]')"
        ),
        {"start": KEY.timestamp, "stop": datetime(2000, 1, 1, 9, tzinfo=UTC)},
    )
    tx = connection.execute(text("SELECT id FROM transactions")).scalar_one()
    for hour, value in ((8, "1500"), (10, "2500")):
        connection.execute(
            text(
                "INSERT INTO meter_values (charge_point_id, connector_id, transaction_id,"
                " timestamp, value, measurand, unit, context, location, phase, format, flags,"
                " received_at) VALUES ('CP-OLD', 1, :tx, :at, :value,"
                " 'Energy.Active.Import.Register', 'Wh', 'Sample.Periodic', 'Outlet', '', 'Raw',"
                " '[]', :at)"
            ),
            {"tx": tx, "at": datetime(2000, 1, 1, hour, tzinfo=UTC), "value": value},
        )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A database migrated to 0002 with rows in it, then to head; its writer running."""
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(_upgrade, "0002")
        await connection.run_sync(_rows_at_0002)
    await db.migrate()
    writer = asyncio.create_task(db.writer.run())
    try:
        yield db
    finally:
        db.writer.close()
        await writer
        await db.dispose()


async def test_existing_samples_get_their_digest_and_after_stop_flag(database: Database) -> None:
    """Stored samples get the value digest of new ones, and after_stop when after their stop."""
    async with database.sessions() as session:
        rows = (await session.execute(select(MeterValue).order_by(MeterValue.timestamp))).scalars()
        got = [(row.value, row.value_digest, row.after_stop) for row in rows]
    assert got == [
        ("1500", hashlib.md5(b"1500").hexdigest(), False),
        ("2500", hashlib.md5(b"2500").hexdigest(), True),
    ]
    assert [digest for _, digest, _ in got] == [samples.value_digest(v) for v, _, _ in got]


async def test_the_start_key_of_a_stopped_transaction_starts_a_new_one(database: Database) -> None:
    """After the migration, the key of a stopped transaction is free; a repeat while open is not."""
    start = partial(transactions.start_transaction, key=KEY, reservation_id=None, flags=[], now=NOW)
    async with database.sessions() as session:
        stopped = (await session.execute(text("SELECT id FROM transactions"))).scalar_one()
    first = await database.writer.submit(start)
    again = await database.writer.submit(start)
    assert (first.created, first.transaction_id != stopped) == (True, True)
    assert (again.created, again.transaction_id) == (False, first.transaction_id)
