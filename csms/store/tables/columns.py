"""Column types and helpers shared by every table module."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    Table,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps them as naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class (for bulk statements)."""
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table)
    return table


def utc_column(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


# The surrogate id of a table that grows with traffic (the outbox, meter values, the
# delivery log...): 64-bit, as the columns that hold one (webhook cursors, outbox_id, the
# OCPI feed's last_event_id) have been BigInteger from the start. A SERIAL int4 runs out at
# 2^31 - 1: a week of outbox rows, four days of meter rows at the capacity model's peak
# (docs/performance.md, "Capacity model (on paper)"). PostgreSQL: BIGINT, its sequence AS
# bigint (migration 0018_bigint_ids). SQLite: INTEGER, the rowid alias, 64-bit already; a
# "BIGINT PRIMARY KEY" would be an ordinary column, not the rowid, and would not be
# assigned (https://sqlite.org/lang_createtable.html#rowid).
# The type also makes asyncpg's bind casts `::BIGINT` (SQLAlchemy renders one per parameter
# compared with the column): with an Integer model, `id > :after` past 2^31 fails.
# OCPP ids stay Integer: `transactions.id` is the transactionId (StartTransaction.conf) and
# `reservations.id` the reservationId (ReserveNow.req), JSON integers that chargers keep as
# int32, and that csms refuses past it in what they send (ocpp16/poison.py, INT32_MAX).
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def big_id() -> Any:
    """A 64-bit autoincrementing primary key (BIG_ID)."""
    return Field(default=None, primary_key=True, sa_type=BIG_ID)


# A transaction whose StopTransaction the charger has not sent: the only ones a repeated
# StartTransaction may match. Spelled the same in the index and in ON CONFLICT, so that
# PostgreSQL infers the partial index; SQLite reads `false` as 0.
OPEN_FOR_THE_CHARGER = "charger_stopped = false"
