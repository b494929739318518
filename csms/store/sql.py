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


async def updated_page(
    session: AsyncSession,
    table: Table,
    conditions: list[ColumnElement[bool]],
    *,
    order: Any,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the OCPI objects kept in a table's `data` column, and their total count.

    OCPI 2.2.1 transport_and_format §Paginated Response: "It is best practice to return the
    oldest objects first", so by `last_updated` then `order`; date_from inclusive, date_to
    exclusive on `last_updated`.
    """
    conditions = list(conditions)
    if date_from is not None:
        conditions.append(table.c.last_updated >= date_from)
    if date_to is not None:
        conditions.append(table.c.last_updated < date_to)
    total = (
        await session.execute(select(func.count()).select_from(table).where(*conditions))
    ).scalar_one()
    rows = await session.execute(
        select(table.c.data)
        .where(*conditions)
        .order_by(table.c.last_updated, order)
        .offset(offset)
        .limit(limit)
    )
    return [dict(data) for (data,) in rows], int(total)


def rowcount(result: Any) -> int:
    """Rows a DELETE or UPDATE touched (0 where the driver does not say)."""
    return int(getattr(result, "rowcount", 0) or 0)
