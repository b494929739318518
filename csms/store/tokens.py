"""OCPI tokens: the partners' Token objects, and how each was authorized at a charger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.roaming import TokenState, WhitelistType
from csms.core.session import TokenType
from csms.store.tables import OcpiAuthorization, OcpiToken


async def get_token(
    session: AsyncSession, *, country_code: str, party_id: str, uid: str, token_type: str
) -> OcpiToken | None:
    """A token by its owner and uid; country and party compare case-insensitively (CiString)."""
    rows = await session.execute(
        select(OcpiToken).where(
            func.upper(col(OcpiToken.country_code)) == country_code.upper(),
            func.upper(col(OcpiToken.party_id)) == party_id.upper(),
            col(OcpiToken.uid) == uid,
            col(OcpiToken.type) == token_type,
        )
    )
    return rows.scalars().first()


async def token_by_id(session: AsyncSession, token_id: int) -> OcpiToken | None:
    return await session.get(OcpiToken, token_id)


async def token_by_id_tag(session: AsyncSession, id_tag: str) -> OcpiToken | None:
    """The partner token a charger's idTag stands for; the most recently updated one when
    two eMSPs pushed the same uid."""
    rows = await session.execute(
        select(OcpiToken)
        .where(col(OcpiToken.id_tag) == id_tag)
        .order_by(col(OcpiToken.last_updated).desc(), col(OcpiToken.id).desc())
        .limit(1)
    )
    return rows.scalars().first()


async def save_token(
    session: AsyncSession,
    *,
    partner_id: str,
    token: dict[str, Any],
    id_tag: str,
    pushed: bool,
    last_updated: datetime,
) -> tuple[bool, OcpiToken]:
    """Create or replace a token from its JSON (mod_tokens §Token Object); True when new.

    A token first seen in a command and pushed later becomes a pushed one; a command never
    turns a pushed token back.
    """
    row = await get_token(
        session,
        country_code=token["country_code"],
        party_id=token["party_id"],
        uid=token["uid"],
        token_type=token["type"],
    )
    created = row is None
    if row is None:
        row = OcpiToken(
            partner_id=partner_id,
            country_code=token["country_code"],
            party_id=token["party_id"],
            uid=token["uid"],
            type=token["type"],
            id_tag=id_tag,
            contract_id=token["contract_id"],
            whitelist=token["whitelist"],
            valid=token["valid"],
            pushed=pushed,
        )
        session.add(row)
    row.partner_id = partner_id
    row.id_tag = id_tag
    row.contract_id = token["contract_id"]
    row.whitelist = token["whitelist"]
    row.valid = token["valid"]
    row.data = token
    row.pushed = row.pushed or pushed
    row.last_updated = last_updated
    await session.flush()
    return created, row


async def add_authorization(
    session: AsyncSession,
    *,
    token_id: int,
    charge_point_id: str | None,
    method: str,
    authorization_reference: str | None,
    status: str,
    now: datetime,
) -> None:
    session.add(
        OcpiAuthorization(
            token_id=token_id,
            charge_point_id=charge_point_id,
            method=method,
            authorization_reference=authorization_reference,
            status=status,
            created_at=now,
        )
    )
    await session.flush()


async def latest_authorization(
    session: AsyncSession,
    *,
    token_id: int,
    charge_point_id: str,
    since: datetime | None = None,
    method: str | None = None,
) -> OcpiAuthorization | None:
    """The newest authorization of a token at a charge point (or for any, when the command
    named none), optionally since a time and of one method."""
    conditions = [
        col(OcpiAuthorization.token_id) == token_id,
        (col(OcpiAuthorization.charge_point_id) == charge_point_id)
        | col(OcpiAuthorization.charge_point_id).is_(None),
    ]
    if since is not None:
        conditions.append(col(OcpiAuthorization.created_at) >= since)
    if method is not None:
        conditions.append(col(OcpiAuthorization.method) == method)
    rows = await session.execute(
        select(OcpiAuthorization)
        .where(*conditions)
        .order_by(col(OcpiAuthorization.created_at).desc(), col(OcpiAuthorization.id).desc())
        .limit(1)
    )
    return rows.scalars().first()


def token_state(row: OcpiToken) -> TokenState:
    """The core's view of a stored token."""
    group = row.data.get("group_id")
    return TokenState(
        country_code=row.country_code,
        party_id=row.party_id,
        uid=row.uid,
        type=TokenType(row.type),
        contract_id=row.contract_id,
        valid=row.valid,
        whitelist=WhitelistType(row.whitelist),
        group_id=group if isinstance(group, str) else None,
    )
