"""The registry: id tags and authorization, users, and vendor error codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.authorize import AuthorizationStatus, IdTagInfo, IdTagRecord, authorize
from csms.store.sql import page, rowcount, upsert
from csms.store.tables import IdTag, User, VendorErrorCode

# -- id tags -------------------------------------------------------------------------------


async def get_id_tag(session: AsyncSession, id_tag: str) -> IdTag | None:
    return await session.get(IdTag, id_tag)


async def authorize_id_tag(session: AsyncSession, *, id_tag: str, now: datetime) -> IdTagInfo:
    """The IdTagInfo for a tag, from the id-tags table."""
    return decide(await session.get(IdTag, id_tag), now=now)


def decide(row: IdTag | None, *, now: datetime) -> IdTagInfo:
    """The IdTagInfo for a tag's row (None: an unknown tag)."""
    record = None
    if row is not None:
        record = IdTagRecord(
            id_tag=row.id_tag,
            status=AuthorizationStatus(row.status),
            expiry_date=row.expiry_date,
            parent_id_tag=row.parent_id_tag,
        )
    return authorize(record, now=now)


async def upsert_id_tag(
    session: AsyncSession, *, id_tag: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or replace an id tag. Returns True when it was created."""
    return await upsert(session, IdTag, key={"id_tag": id_tag}, values=values, now=now)


async def delete_id_tag(session: AsyncSession, *, id_tag: str) -> bool:
    result = await session.execute(delete(IdTag).where(col(IdTag.id_tag) == id_tag))
    return bool(rowcount(result))


async def list_id_tags(
    session: AsyncSession, *, status: str | None, user_id: str | None, limit: int, offset: int
) -> tuple[list[IdTag], int]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(col(IdTag.status) == status)
    if user_id is not None:
        conditions.append(col(IdTag.user_id) == user_id)
    where = and_(*conditions) if conditions else None
    return await page(session, IdTag, where, col(IdTag.id_tag), limit, offset)


# -- users and vendor error codes ----------------------------------------------------------


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def upsert_user(
    session: AsyncSession, *, user_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a user. Returns True when it was created."""
    return await upsert(session, User, key={"id": user_id}, values=values, now=now)


async def delete_user(session: AsyncSession, *, user_id: str) -> bool:
    # The user's tags stay usable; they just no longer have an owner.
    await session.execute(update(IdTag).where(col(IdTag.user_id) == user_id).values(user_id=None))
    result = await session.execute(delete(User).where(col(User.id) == user_id))
    return bool(rowcount(result))


async def list_users(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[User], int]:
    return await page(session, User, None, col(User.id), limit, offset)


async def tags_of_users(session: AsyncSession, user_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = await session.execute(
        select(IdTag).where(col(IdTag.user_id).in_(user_ids)).order_by(col(IdTag.id_tag))
    )
    tags: dict[str, list[str]] = {user_id: [] for user_id in user_ids}
    for row in rows.scalars():
        if row.user_id is not None:
            tags[row.user_id].append(row.id_tag)
    return tags


async def get_vendor_error_code(
    session: AsyncSession, *, vendor: str, code: str
) -> VendorErrorCode | None:
    return await session.get(VendorErrorCode, (vendor, code))


async def upsert_vendor_error_code(
    session: AsyncSession, *, vendor: str, code: str, description: str
) -> bool:
    existing = await session.get(VendorErrorCode, (vendor, code))
    if existing is None:
        session.add(VendorErrorCode(vendor=vendor, vendor_error_code=code, description=description))
        await session.flush()
        return True
    existing.description = description
    await session.flush()
    return False


async def delete_vendor_error_code(session: AsyncSession, *, vendor: str, code: str) -> bool:
    result = await session.execute(
        delete(VendorErrorCode).where(
            col(VendorErrorCode.vendor) == vendor, col(VendorErrorCode.vendor_error_code) == code
        )
    )
    return bool(rowcount(result))


async def list_vendor_error_codes(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[VendorErrorCode], int]:
    order = (col(VendorErrorCode.vendor), col(VendorErrorCode.vendor_error_code))
    query = select(VendorErrorCode).order_by(*order).limit(limit).offset(offset)
    total = (await session.execute(select(func.count()).select_from(VendorErrorCode))).scalar_one()
    return list((await session.execute(query)).scalars()), int(total)


async def vendor_error_texts(
    session: AsyncSession, codes: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Descriptions for (vendor, vendorErrorCode) pairs that have one."""
    if not codes:
        return {}
    rows = await session.execute(
        select(VendorErrorCode).where(
            col(VendorErrorCode.vendor_error_code).in_({code for _, code in codes})
        )
    )
    wanted = set(codes)
    return {
        (row.vendor, row.vendor_error_code): row.description
        for row in rows.scalars()
        if (row.vendor, row.vendor_error_code) in wanted
    }
