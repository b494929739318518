"""OCPI partners: the partner rows, their locations, the push queue, the feed position, and
the Sessions, CDRs and reservations kept per partner (docs/ocpi.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.clock import as_utc
from csms.core.roaming import (
    COLLAPSIBLE,
    LocationChoice,
    PartnerState,
    PushKind,
    Selection,
    collapsed_kind,
)
from csms.core.roaming_hub import PartyRef
from csms.store.sql import page, rowcount, updated_page
from csms.store.tables import (
    OcpiAuthorization,
    OcpiCdr,
    OcpiFeed,
    OcpiHubClient,
    OcpiPartner,
    OcpiPartnerLocation,
    OcpiPartnerTariff,
    OcpiPush,
    OcpiReservation,
    OcpiSession,
    OcpiToken,
    OutboxEvent,
    table_of,
)

# -- partners ------------------------------------------------------------------------------


async def get_partner(session: AsyncSession, partner_id: str) -> OcpiPartner | None:
    return await session.get(OcpiPartner, partner_id)


async def list_partners(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[OcpiPartner], int]:
    return await page(session, OcpiPartner, None, col(OcpiPartner.id), limit, offset)


async def partner_by_token(session: AsyncSession, digest: str) -> OcpiPartner | None:
    """The partner a credentials token digest belongs to (its token, or its token A)."""
    rows = await session.execute(
        select(OcpiPartner).where(
            or_(col(OcpiPartner.token_hash) == digest, col(OcpiPartner.token_a_hash) == digest)
        )
    )
    return rows.scalars().first()


async def registered_partners(session: AsyncSession) -> list[OcpiPartner]:
    rows = await session.execute(
        select(OcpiPartner)
        .where(col(OcpiPartner.state) == PartnerState.REGISTERED.value)
        .order_by(col(OcpiPartner.id))
    )
    return list(rows.scalars())


async def save_partner(
    session: AsyncSession, *, partner_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a partner; True when it was created."""
    row = await session.get(OcpiPartner, partner_id)
    created = row is None
    if row is None:
        row = OcpiPartner(id=partner_id, created_at=now, **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    row.updated_at = now
    await session.flush()
    return created


async def delete_partner(session: AsyncSession, *, partner_id: str) -> bool:
    """Remove a partner and everything csms keeps for it; False when there was none."""
    tokens = select(col(OcpiToken.id)).where(col(OcpiToken.partner_id) == partner_id)
    await session.execute(
        delete(OcpiAuthorization).where(col(OcpiAuthorization.token_id).in_(tokens))
    )
    for model in (
        OcpiToken,
        OcpiPush,
        OcpiPartnerLocation,
        OcpiSession,
        OcpiCdr,
        OcpiReservation,
        OcpiPartnerTariff,
        OcpiHubClient,
    ):
        table = table_of(model)
        await session.execute(delete(table).where(table.c.partner_id == partner_id))
    result = await session.execute(delete(OcpiPartner).where(col(OcpiPartner.id) == partner_id))
    return bool(rowcount(result))


# -- which locations a partner gets ----------------------------------------------------------


async def partner_locations(
    session: AsyncSession, partner_id: str
) -> dict[str, OcpiPartnerLocation]:
    rows = await session.execute(
        select(OcpiPartnerLocation).where(col(OcpiPartnerLocation.partner_id) == partner_id)
    )
    return {row.location_id: row for row in rows.scalars()}


async def partner_location(
    session: AsyncSession, *, partner_id: str, location_id: str
) -> OcpiPartnerLocation | None:
    return await session.get(OcpiPartnerLocation, (partner_id, location_id))


def selection_of(partner: OcpiPartner, rows: dict[str, OcpiPartnerLocation]) -> Selection:
    """The operator's choice for a partner, as the core decides with it."""
    choices = {
        location_id: LocationChoice(
            location_id=location_id,
            charge_point_ids=None if row.charge_point_ids is None else tuple(row.charge_point_ids),
        )
        for location_id, row in rows.items()
        if row.chosen
    }
    return Selection(all_published=partner.publish_all, choices=choices)


async def set_selection(
    session: AsyncSession,
    *,
    partner_id: str,
    publish_all: bool,
    location_ids: Sequence[str],
    now: datetime,
) -> None:
    """Replace the partner's choice: every published location and/or these locations."""
    partner = await session.get(OcpiPartner, partner_id)
    assert partner is not None
    partner.publish_all = publish_all
    partner.updated_at = now
    rows = await partner_locations(session, partner_id)
    for location_id, row in rows.items():
        if location_id not in location_ids and row.chosen:
            row.chosen = False
            row.charge_point_ids = None
            row.updated_at = now
    for location_id in location_ids:
        await choose_location(
            session,
            partner_id=partner_id,
            location_id=location_id,
            charge_point_ids=rows[location_id].charge_point_ids if location_id in rows else None,
            now=now,
        )
    await session.flush()


async def choose_location(
    session: AsyncSession,
    *,
    partner_id: str,
    location_id: str,
    charge_point_ids: Sequence[str] | None,
    now: datetime,
) -> None:
    """Give the partner a location, with every charger (None) or only some."""
    row = await session.get(OcpiPartnerLocation, (partner_id, location_id))
    if row is None:
        row = OcpiPartnerLocation(partner_id=partner_id, location_id=location_id)
        session.add(row)
    row.chosen = True
    row.charge_point_ids = None if charge_point_ids is None else list(charge_point_ids)
    row.updated_at = now
    await session.flush()


async def drop_location(session: AsyncSession, *, partner_id: str, location_id: str) -> bool:
    """Take an explicit choice back; False when the location was not chosen."""
    row = await session.get(OcpiPartnerLocation, (partner_id, location_id))
    if row is None or not row.chosen:
        return False
    row.chosen = False
    row.charge_point_ids = None
    await session.flush()
    return True


async def record_sent(
    session: AsyncSession,
    *,
    partner_id: str,
    location_id: str,
    sent: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Remember the Location the partner now holds (None: it was withdrawn)."""
    row = await session.get(OcpiPartnerLocation, (partner_id, location_id))
    if row is None:
        if sent is None:
            return
        row = OcpiPartnerLocation(partner_id=partner_id, location_id=location_id)
        session.add(row)
    row.sent = sent
    row.updated_at = now
    if sent is None and not row.chosen:
        await session.delete(row)
    await session.flush()


# -- the push queue --------------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    *,
    partner_id: str,
    key: str,
    kind: PushKind,
    now: datetime,
    body: dict[str, Any] | None = None,
    url: str | None = None,
    to: PartyRef | None = None,
) -> None:
    """Queue a push behind the partner's others; it replaces an unsent push of the same
    object where only the latest state matters (core.roaming.COLLAPSIBLE). `to` is the
    party it is addressed to when that is not the partner itself (a hub's client)."""
    if kind in COLLAPSIBLE:
        pending = await session.execute(
            select(OcpiPush)
            .where(
                col(OcpiPush.partner_id) == partner_id,
                col(OcpiPush.object_key) == key,
                col(OcpiPush.failed_at).is_(None),
            )
            .order_by(col(OcpiPush.id))
        )
        for row in pending.scalars():
            if PushKind(row.kind) in COLLAPSIBLE:
                kind = collapsed_kind(PushKind(row.kind), kind)
                await session.delete(row)
    session.add(
        OcpiPush(
            partner_id=partner_id,
            object_key=key,
            kind=kind.value,
            url=url,
            body=body,
            to_country_code=None if to is None else to.country_code,
            to_party_id=None if to is None else to.party_id,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    await session.flush()


async def next_push(session: AsyncSession, partner_id: str) -> OcpiPush | None:
    """The partner's oldest push not given up on: pushes go strictly in order."""
    rows = await session.execute(
        select(OcpiPush)
        .where(col(OcpiPush.partner_id) == partner_id, col(OcpiPush.failed_at).is_(None))
        .order_by(col(OcpiPush.id))
        .limit(1)
    )
    return rows.scalars().first()


async def delete_push(session: AsyncSession, *, push_id: int) -> None:
    await session.execute(delete(OcpiPush).where(col(OcpiPush.id) == push_id))


async def postpone_push(
    session: AsyncSession, *, push_id: int, attempts: int, at: datetime, error: str
) -> None:
    await session.execute(
        update(OcpiPush)
        .where(col(OcpiPush.id) == push_id)
        .values(attempts=attempts, next_attempt_at=at, last_error=error)
    )


async def give_up_push(session: AsyncSession, *, push_id: int, error: str, now: datetime) -> None:
    """The partner refused it for good: kept for the operator, no longer in the way."""
    await session.execute(
        update(OcpiPush).where(col(OcpiPush.id) == push_id).values(failed_at=now, last_error=error)
    )


async def change_push(session: AsyncSession, *, push_id: int, kind: PushKind) -> None:
    await session.execute(
        update(OcpiPush).where(col(OcpiPush.id) == push_id).values(kind=kind.value)
    )


async def push_counts(session: AsyncSession, partner_id: str) -> tuple[int, int]:
    """(waiting, given up) pushes of a partner."""
    rows = await session.execute(
        select(col(OcpiPush.failed_at).is_(None), func.count())
        .where(col(OcpiPush.partner_id) == partner_id)
        .group_by(col(OcpiPush.failed_at).is_(None))
    )
    counts = {bool(waiting): int(count) for waiting, count in rows}
    return counts.get(True, 0), counts.get(False, 0)


async def pushes_of(
    session: AsyncSession, partner_id: str, *, refused: bool, limit: int
) -> list[OcpiPush]:
    """A partner's waiting pushes in the order they go, or (`refused`) those it refused for
    good, newest first: the push backlog the dashboard shows."""
    query = select(OcpiPush).where(col(OcpiPush.partner_id) == partner_id)
    if refused:
        query = query.where(col(OcpiPush.failed_at).is_not(None)).order_by(col(OcpiPush.id).desc())
    else:
        query = query.where(col(OcpiPush.failed_at).is_(None)).order_by(col(OcpiPush.id))
    rows = await session.execute(query.limit(limit))
    return list(rows.scalars())


# -- the feed: how far the outbox has been read ----------------------------------------------

FEED = "outbox"


async def feed_position(session: AsyncSession) -> int | None:
    """The id of the last outbox event the feed handled; None before its first run."""
    row = await session.get(OcpiFeed, FEED)
    return None if row is None else row.last_event_id


async def move_feed(session: AsyncSession, *, position: int, now: datetime) -> None:
    row = await session.get(OcpiFeed, FEED)
    if row is None:
        session.add(OcpiFeed(name=FEED, last_event_id=position, updated_at=now))
    else:
        row.last_event_id = position
        row.updated_at = now
    await session.flush()


async def last_event_id(session: AsyncSession) -> int:
    """The newest outbox id (0 when empty)."""
    newest = (await session.execute(select(func.max(col(OutboxEvent.id))))).scalar_one()
    return int(newest or 0)


async def events_after(
    session: AsyncSession, *, position: int, upto: int, types: Sequence[str], limit: int
) -> list[OutboxEvent]:
    """Outbox events in (`position`, `upto`] of the given types, oldest first (read, not
    claimed: the relay delivers them to MQTT independently)."""
    rows = await session.execute(
        select(OutboxEvent)
        .where(
            col(OutboxEvent.id) > position,
            col(OutboxEvent.id) <= upto,
            col(OutboxEvent.type).in_(types),
        )
        .order_by(col(OutboxEvent.id))
        .limit(limit)
    )
    return list(rows.scalars())


# -- Sessions, CDRs and reservations kept per partner ----------------------------------------


async def get_session(
    session: AsyncSession, *, partner_id: str, session_id: str
) -> OcpiSession | None:
    return await session.get(OcpiSession, (partner_id, session_id))


async def session_owner(session: AsyncSession, session_id: str) -> OcpiSession | None:
    """The partner Session row for an OCPI session id, whichever partner holds it."""
    rows = await session.execute(
        select(OcpiSession).where(col(OcpiSession.session_id) == session_id).limit(1)
    )
    return rows.scalars().first()


async def save_session(
    session: AsyncSession,
    *,
    partner_id: str,
    session_id: str,
    token_id: int,
    auth_method: str,
    authorization_reference: str | None,
    data: dict[str, Any],
    last_updated: datetime,
    owner: PartyRef | None = None,
) -> None:
    row = await session.get(OcpiSession, (partner_id, session_id))
    if row is None:
        row = OcpiSession(
            partner_id=partner_id,
            session_id=session_id,
            token_id=token_id,
            auth_method=auth_method,
            authorization_reference=authorization_reference,
            owner_country_code=None if owner is None else owner.country_code,
            owner_party_id=None if owner is None else owner.party_id,
        )
        session.add(row)
    row.data = data
    row.last_updated = last_updated
    await session.flush()


async def get_cdr(session: AsyncSession, *, partner_id: str, cdr_id: str) -> OcpiCdr | None:
    return await session.get(OcpiCdr, (partner_id, cdr_id))


async def save_cdr(
    session: AsyncSession,
    *,
    partner_id: str,
    cdr_id: str,
    data: dict[str, Any],
    last_updated: datetime,
    owner: PartyRef | None = None,
) -> bool:
    """Keep a CDR once; False when it exists already (a CDR never changes, mod_cdrs)."""
    if await session.get(OcpiCdr, (partner_id, cdr_id)) is not None:
        return False
    session.add(
        OcpiCdr(
            partner_id=partner_id,
            cdr_id=cdr_id,
            data=data,
            last_updated=last_updated,
            owner_country_code=None if owner is None else owner.country_code,
            owner_party_id=None if owner is None else owner.party_id,
        )
    )
    await session.flush()
    return True


# What the Sender interfaces page through (mod_sessions, mod_cdrs §GET Method), oldest update
# first and then by id.
_PAGED: dict[str, tuple[type[OcpiSession] | type[OcpiCdr], Any]] = {
    "sessions": (OcpiSession, col(OcpiSession.session_id)),
    "cdrs": (OcpiCdr, col(OcpiCdr.cdr_id)),
}


async def objects_page(
    session: AsyncSession,
    kind: Literal["sessions", "cdrs"],
    *,
    partner_id: str,
    date_from: datetime | None,
    date_to: datetime | None,
    offset: int,
    limit: int,
    owner: PartyRef | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of a partner's Sessions or CDRs, oldest update first. With `owner`, only that
    party's (a hub's client asking through the hub sees its own only)."""
    model, order = _PAGED[kind]
    table = table_of(model)
    conditions = [table.c.partner_id == partner_id]
    if owner is not None:
        conditions.append(table.c.owner_country_code == owner.country_code)
        conditions.append(table.c.owner_party_id == owner.party_id)
    return await updated_page(
        session,
        table,
        conditions,
        order=order,
        date_from=date_from,
        date_to=date_to,
        offset=offset,
        limit=limit,
    )


async def get_reservation(
    session: AsyncSession, *, partner_id: str, reservation_id: str
) -> OcpiReservation | None:
    return await session.get(OcpiReservation, (partner_id, reservation_id))


async def save_reservation(
    session: AsyncSession,
    *,
    partner_id: str,
    reservation_id: str,
    charge_point_id: str,
    ocpp_reservation_id: int,
    now: datetime,
) -> None:
    row = await session.get(OcpiReservation, (partner_id, reservation_id))
    if row is None:
        row = OcpiReservation(
            partner_id=partner_id,
            reservation_id=reservation_id,
            charge_point_id=charge_point_id,
            ocpp_reservation_id=ocpp_reservation_id,
        )
        session.add(row)
    row.charge_point_id = charge_point_id
    row.ocpp_reservation_id = ocpp_reservation_id
    row.created_at = now
    await session.flush()


async def push_heads(session: AsyncSession) -> list[tuple[str, datetime]]:
    """Each registered partner's oldest waiting push: (partner id, when it is due)."""
    heads = (
        select(col(OcpiPush.partner_id), func.min(col(OcpiPush.id)).label("head"))
        .where(col(OcpiPush.failed_at).is_(None))
        .group_by(col(OcpiPush.partner_id))
        .subquery()
    )
    rows = await session.execute(
        select(col(OcpiPush.partner_id), col(OcpiPush.next_attempt_at))
        .join(heads, heads.c.head == col(OcpiPush.id))
        .join(OcpiPartner, col(OcpiPartner.id) == col(OcpiPush.partner_id))
        .where(col(OcpiPartner.state) == PartnerState.REGISTERED.value)
    )
    return [(str(partner_id), as_utc(due)) for partner_id, due in rows if due is not None]


async def has_events_after(session: AsyncSession, *, position: int, types: Sequence[str]) -> bool:
    """Whether the outbox holds an event of these types after `position`."""
    rows = await session.execute(
        select(col(OutboxEvent.id))
        .where(col(OutboxEvent.id) > position, col(OutboxEvent.type).in_(types))
        .limit(1)
    )
    return rows.first() is not None
