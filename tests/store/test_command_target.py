"""The charger as a command's checks read it (`read_command_target`), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store import chargers
from csms.store.commands import CommandTarget, read_command_target
from csms.store.db import Database
from csms.store.tables import ChargePoint, table_of

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 1, 1, tzinfo=UTC)


async def _set(database: Database, charge_point_id: str, **values: object) -> None:
    async def job(session: AsyncSession) -> None:
        table = table_of(ChargePoint)
        await session.execute(update(table).where(table.c.id == charge_point_id).values(values))

    await database.writer.submit(job)


async def test_reads_the_two_columns_of_a_known_charger(database: Database) -> None:
    await database.writer.submit_bulk(chargers.registration(charge_point_id="CP-1", now=NOW))
    target = await read_command_target(database, "CP-1")
    assert target is not None
    assert isinstance(target.registration_status, str)
    assert target.security_profile == 0


async def test_an_unknown_charger_reads_as_none(database: Database) -> None:
    assert await read_command_target(database, "CP-NONE") is None


async def test_sees_each_change_once_committed(database: Database) -> None:
    """Read after read, each sees the last commit: no snapshot kept between reads."""
    await database.writer.submit_bulk(chargers.registration(charge_point_id="CP-2", now=NOW))
    await read_command_target(database, "CP-2")
    await _set(database, "CP-2", registration_status="Rejected", security_profile=2)
    assert await read_command_target(database, "CP-2") == CommandTarget("Rejected", 2)
    await _set(database, "CP-2", registration_status="Accepted", security_profile=1)
    assert await read_command_target(database, "CP-2") == CommandTarget("Accepted", 1)
