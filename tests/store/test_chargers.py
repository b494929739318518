"""Charge point writes of a connecting charger: what a boot storm of new chargers runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.store import chargers
from csms.store.db import Database, _prepare
from csms.store.tables import ChargePoint

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 1, 1, tzinfo=UTC)


async def _charge_point(database: Database, charge_point_id: str) -> ChargePoint:
    async with database.sessions() as session:
        row = await session.get(ChargePoint, charge_point_id)
    assert row is not None
    return row


async def test_registration_runs_on_the_compiled_path(database: Database) -> None:
    """Every column is given, none left to a Python-side default: SQLAlchemy would compute
    those per row and the insert would miss the compiled executemany (`execute_many`)."""
    assert _prepare(chargers._insert_charge_point, database.engine.dialect) is not None
    await database.writer.submit_bulk(chargers.registration(charge_point_id="CP-NEW", now=NOW))
    row = await _charge_point(database, "CP-NEW")
    assert (row.security_profile, row.password_hex_compat, row.offline_stage) == (0, False, 0)
    assert (row.registration_status, row.created_at, row.updated_at) == ("accepted", NOW, NOW)


async def test_registration_leaves_an_existing_charger_as_it_is(database: Database) -> None:
    """Two admissions of one unknown identity both register it: the second changes nothing."""
    async with database.sessions() as session, session.begin():
        session.add(
            ChargePoint(
                id="CP-KNOWN",
                security_profile=1,
                password_hex_compat=True,
                offline_stage=2,
                registration_status="pending",
            )
        )
    await database.writer.submit_bulk(chargers.registration(charge_point_id="CP-KNOWN", now=NOW))
    row = await _charge_point(database, "CP-KNOWN")
    assert (row.security_profile, row.password_hex_compat, row.offline_stage) == (1, True, 2)
    assert row.registration_status == "pending"
