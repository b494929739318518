"""Commands and their side effects in our data: profiles, reservations, configuration, lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.charging import (
    ProfileKey,
    ReservationStatus,
    StoredProfile,
    cleared_by,
    replaced_by,
)
from csms.core.clock import as_utc
from csms.core.commands import (
    ConfigurationValue,
    Effect,
    LocalListVersion,
    PasswordRotated,
    ProfileInstalled,
    ProfilesCleared,
    ReservationAccepted,
    ReservationCanceled,
    ReservationRefused,
)
from csms.store.db import Database
from csms.store.tables import (
    ChargePoint,
    ChargingProfile,
    Command,
    ConfigurationKey,
    Reservation,
    table_of,
)


@dataclass(frozen=True)
class CommandRecord:
    """One command as it is kept: the request (redacted), the outcome and the answer."""

    charge_point_id: str
    action: str
    request: dict[str, Any]
    outcome: str
    requested_by: str | None
    requested_at: datetime
    completed_at: datetime
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None
    error_details: dict[str, Any] | None = None
    # The hash of an AuthorizationKey this command sets (the request holds no key).
    new_password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CommandTarget:
    """What a command's checks need of its charger's row."""

    registration_status: str
    security_profile: int


async def command_target(session: AsyncSession, charge_point_id: str) -> CommandTarget | None:
    """The charger as a command's checks read it, or None if unknown: two columns in one
    cached statement, no ORM object (`Commands.check` runs on the chargers' loop)."""
    found = (await session.execute(_select_target(), {"cp": charge_point_id})).first()
    return None if found is None else CommandTarget(str(found[0]), int(found[1]))


async def read_command_target(database: Database, charge_point_id: str) -> CommandTarget | None:
    """`command_target` read on its own: on SQLite on the calling thread, without
    aiosqlite's thread round trips (`Database.read_first`; both columns are text and
    integer, as `InlineReader` needs)."""
    found = await database.read_first(_select_target(), {"cp": charge_point_id})
    return None if found is None else CommandTarget(str(found[0]), int(found[1]))


@cache
def _select_target() -> Executable:
    table = table_of(ChargePoint)
    return select(table.c.registration_status, table.c.security_profile).where(
        table.c.id == bindparam("cp")
    )


async def record_command(
    session: AsyncSession, *, record: CommandRecord, effects: Sequence[Effect]
) -> tuple[int, list[Reservation]]:
    """Keep the command and apply its effects; returns the reservations it changed."""
    fields = {k: v for k, v in record.__dict__.items() if k != "new_password_hash"}
    # A Core INSERT, not an ORM object and a flush: the unit of work was a fifth (SQLite)
    # to a quarter (PostgreSQL) of the CPU of a command's commit, on the chargers' loop.
    result = await session.execute(_insert_command(), fields)
    command_id: int = result.scalar_one()
    changed: list[Reservation] = []
    for effect in effects:
        reservation = await _apply(session, record, effect)
        if reservation is not None:
            changed.append(reservation)
    return command_id, changed


@cache
def _insert_command() -> Executable:
    return insert(table_of(Command)).returning(table_of(Command).c.id)


async def _apply(
    session: AsyncSession, record: CommandRecord, effect: Effect
) -> Reservation | None:
    """Apply one effect; returns the reservation it made or canceled, if any."""
    cp, at = record.charge_point_id, record.completed_at
    match effect:
        case ProfileInstalled():
            await _install_profile(session, cp, effect, at=at, source=record.requested_by)
        case ProfilesCleared():
            await _clear_profiles(session, cp, effect)
        case ReservationAccepted():
            return await _reserve(session, cp, effect, at=at)
        case ReservationRefused():
            await _release_pending(session, cp, effect.reservation_id)
        case ReservationCanceled():
            return await _cancel(session, cp, effect.reservation_id, at=at)
        case LocalListVersion():
            await session.execute(
                update(ChargePoint)
                .where(col(ChargePoint.id) == cp)
                .values(local_list_version=effect.version)
            )
        case ConfigurationValue():
            await _store_key(session, cp, effect, at=at)
        case PasswordRotated():
            charge_point = await session.get(ChargePoint, cp)
            if charge_point is not None and record.new_password_hash is not None:
                charge_point.password_hash = record.new_password_hash
                charge_point.updated_at = at
    return None


async def _install_profile(
    session: AsyncSession,
    charge_point_id: str,
    effect: ProfileInstalled,
    *,
    at: datetime,
    source: str | None,
) -> None:
    stored = await _stored_profiles(session, charge_point_id)
    replaced = replaced_by(
        stored,
        connector_id=effect.connector_id,
        profile_id=effect.charging_profile_id,
        level=effect.stack_level,
        purpose=effect.purpose,
    )
    for key in replaced:
        await _delete_profile(session, charge_point_id, key)
    session.add(
        ChargingProfile(
            charge_point_id=charge_point_id,
            connector_id=effect.connector_id,
            charging_profile_id=effect.charging_profile_id,
            stack_level=effect.stack_level,
            purpose=effect.purpose,
            transaction_id=effect.transaction_id,
            profile=effect.profile,
            source=source,
            updated_at=at,
        )
    )
    await session.flush()


async def _clear_profiles(
    session: AsyncSession, charge_point_id: str, effect: ProfilesCleared
) -> None:
    stored = await _stored_profiles(session, charge_point_id)
    cleared = cleared_by(
        stored,
        charging_profile_id=effect.charging_profile_id,
        connector_id=effect.connector_id,
        purpose=effect.purpose,
        stack_level=effect.stack_level,
    )
    for key in cleared:
        await _delete_profile(session, charge_point_id, key)


async def _stored_profiles(session: AsyncSession, charge_point_id: str) -> list[StoredProfile]:
    rows = await session.execute(
        select(ChargingProfile).where(col(ChargingProfile.charge_point_id) == charge_point_id)
    )
    return [
        StoredProfile(
            key=ProfileKey(row.connector_id, row.charging_profile_id),
            stack_level=row.stack_level,
            purpose=row.purpose,
        )
        for row in rows.scalars()
    ]


async def _delete_profile(session: AsyncSession, charge_point_id: str, key: ProfileKey) -> None:
    await session.execute(
        delete(ChargingProfile).where(
            col(ChargingProfile.charge_point_id) == charge_point_id,
            col(ChargingProfile.connector_id) == key.connector_id,
            col(ChargingProfile.charging_profile_id) == key.charging_profile_id,
        )
    )


async def _reserve(
    session: AsyncSession, charge_point_id: str, effect: ReservationAccepted, *, at: datetime
) -> Reservation:
    row = await _reservation(session, charge_point_id, effect.reservation_id)
    if row is None:
        row = Reservation(
            charge_point_id=charge_point_id,
            reservation_id=effect.reservation_id,
            created_at=at,
            connector_id=effect.connector_id,
            id_tag=effect.id_tag,
            expiry_date=effect.expiry,
            status=ReservationStatus.ACTIVE,
            updated_at=at,
        )
        session.add(row)
    # OCPP 1.6 §5.13: a ReserveNow with a known reservationId replaces that reservation.
    row.connector_id = effect.connector_id
    row.id_tag = effect.id_tag
    row.parent_id_tag = effect.parent_id_tag
    row.expiry_date = effect.expiry
    row.status = ReservationStatus.ACTIVE
    row.updated_at = at
    await session.flush()
    return row


async def _release_pending(
    session: AsyncSession, charge_point_id: str, reservation_id: int
) -> None:
    row = await _reservation(session, charge_point_id, reservation_id)
    if row is not None and row.status == ReservationStatus.PENDING:
        await session.delete(row)


async def _cancel(
    session: AsyncSession, charge_point_id: str, reservation_id: int, *, at: datetime
) -> Reservation | None:
    await session.execute(
        update(Reservation)
        .where(
            col(Reservation.charge_point_id) == charge_point_id,
            col(Reservation.reservation_id) == reservation_id,
            col(Reservation.status) == ReservationStatus.ACTIVE,
        )
        .values(status=ReservationStatus.CANCELED, updated_at=at)
    )
    return await _reservation(session, charge_point_id, reservation_id)


async def _reservation(
    session: AsyncSession, charge_point_id: str, reservation_id: int
) -> Reservation | None:
    rows = await session.execute(
        select(Reservation)
        .where(
            col(Reservation.charge_point_id) == charge_point_id,
            col(Reservation.reservation_id) == reservation_id,
        )
        .execution_options(populate_existing=True)
    )
    return rows.scalars().first()


async def _store_key(
    session: AsyncSession, charge_point_id: str, effect: ConfigurationValue, *, at: datetime
) -> None:
    row = await session.get(ConfigurationKey, (charge_point_id, effect.key))
    if row is None:
        row = ConfigurationKey(charge_point_id=charge_point_id, key=effect.key)
        session.add(row)
    row.value = effect.value
    if effect.readonly is not None:
        row.readonly = effect.readonly
    row.updated_at = at
    await session.flush()


async def new_reservation_id(
    session: AsyncSession,
    *,
    charge_point_id: str,
    connector_id: int,
    id_tag: str,
    expiry: datetime,
    now: datetime,
) -> int:
    """Allocate a reservationId for the API's reserve action: a pending row's own id."""
    row = Reservation(
        charge_point_id=charge_point_id,
        reservation_id=0,
        connector_id=connector_id,
        id_tag=id_tag,
        expiry_date=expiry,
        status=ReservationStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    row.reservation_id = row.id
    await session.flush()
    return row.id


async def expire_reservations(session: AsyncSession, *, now: datetime) -> list[Reservation]:
    """Mark active reservations past their expiry as expired; returns them."""
    rows = await session.execute(
        select(Reservation).where(
            col(Reservation.status) == ReservationStatus.ACTIVE,
            col(Reservation.expiry_date) <= now,
        )
    )
    expired = list(rows.scalars())
    for row in expired:
        row.status = ReservationStatus.EXPIRED
        row.updated_at = now
    await session.flush()
    return expired


async def next_reservation_expiry(session: AsyncSession) -> datetime | None:
    rows = await session.execute(
        select(func.min(col(Reservation.expiry_date))).where(
            col(Reservation.status) == ReservationStatus.ACTIVE
        )
    )
    earliest: datetime | None = rows.scalar_one()
    return None if earliest is None else as_utc(earliest)


async def use_reservation(
    session: AsyncSession,
    *,
    charge_point_id: str,
    connector_id: int,
    id_tag: str,
    reservation_id: int | None,
    transaction_id: int,
    now: datetime,
) -> list[Reservation]:
    """A transaction by the reserved tag (or naming the reservation) fulfils it: 'done'."""
    rows = await session.execute(
        select(Reservation).where(
            col(Reservation.charge_point_id) == charge_point_id,
            col(Reservation.status) == ReservationStatus.ACTIVE,
            or_(
                col(Reservation.reservation_id) == reservation_id,
                (col(Reservation.id_tag) == id_tag)
                & col(Reservation.connector_id).in_([connector_id, 0]),
            ),
        )
    )
    done = list(rows.scalars())
    for row in done:
        row.status = ReservationStatus.DONE
        row.transaction_id = transaction_id
        row.updated_at = now
    await session.flush()
    return done


async def list_commands(
    session: AsyncSession, *, charge_point_id: str, limit: int, offset: int
) -> tuple[list[Command], int]:
    where = col(Command.charge_point_id) == charge_point_id
    total = (
        await session.execute(select(func.count()).select_from(Command).where(where))
    ).scalar_one()
    rows = await session.execute(
        select(Command).where(where).order_by(col(Command.id).desc()).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)


async def list_reservations(
    session: AsyncSession,
    *,
    charge_point_id: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Reservation], int]:
    conditions = [col(Reservation.status) != ReservationStatus.PENDING]
    if charge_point_id is not None:
        conditions.append(col(Reservation.charge_point_id) == charge_point_id)
    if status is not None:
        conditions.append(col(Reservation.status) == status)
    count = select(func.count()).select_from(Reservation).where(*conditions)
    total = (await session.execute(count)).scalar_one()
    rows = await session.execute(
        select(Reservation)
        .where(*conditions)
        .order_by(col(Reservation.id))
        .limit(limit)
        .offset(offset)
    )
    return list(rows.scalars()), int(total)


async def list_charging_profiles(
    session: AsyncSession, *, charge_point_id: str
) -> list[ChargingProfile]:
    rows = await session.execute(
        select(ChargingProfile)
        .where(col(ChargingProfile.charge_point_id) == charge_point_id)
        .order_by(col(ChargingProfile.connector_id), col(ChargingProfile.charging_profile_id))
    )
    return list(rows.scalars())


async def list_configuration(
    session: AsyncSession, *, charge_point_id: str
) -> list[ConfigurationKey]:
    rows = await session.execute(
        select(ConfigurationKey)
        .where(col(ConfigurationKey.charge_point_id) == charge_point_id)
        .order_by(col(ConfigurationKey.key))
    )
    return list(rows.scalars())
