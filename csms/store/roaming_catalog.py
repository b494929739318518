"""OCPI roaming, what is shared beyond locations: the tariffs each partner holds (csms as
Tariffs Sender) and the clients a hub partner reported (HubClientInfo Receiver)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.roaming_hub import PartyRef
from csms.store.sql import updated_page
from csms.store.tables import OcpiHubClient, OcpiPartnerTariff, TariffRow, table_of

# -- tariffs -------------------------------------------------------------------------------


async def tariffs_page(
    session: AsyncSession,
    *,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the current Tariffs, oldest update first (mod_tariffs §GET Method:
    date_from inclusive, date_to exclusive on last_updated)."""
    return await updated_page(
        session,
        table_of(TariffRow),
        [],
        order=col(TariffRow.id),
        date_from=date_from,
        date_to=date_to,
        offset=offset,
        limit=limit,
    )


async def current_tariffs(session: AsyncSession) -> dict[str, datetime]:
    """Every current tariff's id and when it last changed."""
    rows = await session.execute(select(col(TariffRow.id), col(TariffRow.last_updated)))
    return {tariff_id: updated for tariff_id, updated in rows if updated is not None}


async def held_tariffs(session: AsyncSession, partner_id: str) -> dict[str, datetime]:
    """The tariffs a partner holds: id and the last_updated of the version it got."""
    rows = await session.execute(
        select(col(OcpiPartnerTariff.tariff_id), col(OcpiPartnerTariff.last_updated)).where(
            col(OcpiPartnerTariff.partner_id) == partner_id
        )
    )
    return {tariff_id: updated for tariff_id, updated in rows if updated is not None}


async def record_tariff_sent(
    session: AsyncSession, *, partner_id: str, tariff_id: str, last_updated: datetime | None
) -> None:
    """What the partner holds after a push: that version, or nothing after a DELETE."""
    row = await session.get(OcpiPartnerTariff, (partner_id, tariff_id))
    if last_updated is None:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(
            OcpiPartnerTariff(partner_id=partner_id, tariff_id=tariff_id, last_updated=last_updated)
        )
    else:
        row.last_updated = last_updated
    await session.flush()


# -- a hub's clients -----------------------------------------------------------------------


async def get_hub_client(
    session: AsyncSession, *, partner_id: str, party: PartyRef
) -> OcpiHubClient | None:
    return await session.get(OcpiHubClient, (partner_id, party.country_code, party.party_id))


async def put_hub_client(
    session: AsyncSession,
    *,
    partner_id: str,
    party: PartyRef,
    role: str,
    status: str,
    last_updated: datetime,
) -> bool:
    """Keep what the hub says of one of its clients; True when it is new."""
    row = await get_hub_client(session, partner_id=partner_id, party=party)
    created = row is None
    if row is None:
        row = OcpiHubClient(
            partner_id=partner_id,
            country_code=party.country_code,
            party_id=party.party_id,
            role=role,
            status=status,
            last_updated=last_updated,
        )
        session.add(row)
    row.role = role
    row.status = status
    row.last_updated = last_updated
    await session.flush()
    return created


async def hub_clients(session: AsyncSession, partner_id: str) -> list[OcpiHubClient]:
    rows = await session.execute(
        select(OcpiHubClient)
        .where(col(OcpiHubClient.partner_id) == partner_id)
        .order_by(col(OcpiHubClient.country_code), col(OcpiHubClient.party_id))
    )
    return list(rows.scalars())
