"""SQL helpers shared by the store's entity modules: dialect INSERTs, upserts, pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store.tables import table_of


def dialect_insert(dialect: str, table: Table) -> Any:
    """INSERT for a dialect, so ON CONFLICT is available on both SQLite and PostgreSQL."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def insert_into(session: AsyncSession, model: type[Any]) -> Any:
    """`dialect_insert` for the session's database."""
    return dialect_insert(session.get_bind().dialect.name, table_of(model))


async def upsert(
    session: AsyncSession,
    model: type[Any],
    *,
    key: dict[str, Any],
    values: dict[str, Any],
    now: datetime,
) -> bool:
    """Get-or-create a row by primary key and set the values; True when it was created."""
    existing = await session.get(model, next(iter(key.values())))
    if existing is None:
        session.add(model(**key, created_at=now, updated_at=now, **values))
        await session.flush()
        return True
    for name, value in values.items():
        setattr(existing, name, value)
    existing.updated_at = now
    await session.flush()
    return False


async def page(
    session: AsyncSession,
    model: type[Any],
    where: ColumnElement[bool] | None,
    order: Any,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """One page of rows and the total count."""
    query = select(model)
    count = select(func.count()).select_from(model)
    if where is not None:
        query = query.where(where)
        count = count.where(where)
    total = (await session.execute(count)).scalar_one()
    rows = await session.execute(query.order_by(order).limit(limit).offset(offset))
    return list(rows.scalars()), int(total)


def rowcount(result: Any) -> int:
    """Rows a DELETE or UPDATE touched (0 where the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
