"""Commands and their side effects in our data: profiles, reservations, configuration, lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.charging import (
    ProfileKey,
    ReservationStatus,
    StoredProfile,
    cleared_by,
    replaced_by,
)
from csms.core.clock import as_utc, parse_timestamp
from csms.store.tables import ChargePoint, ChargingProfile, Command, ConfigurationKey, Reservation

# Answers after which the charger holds what we asked for (per action's status enum).
_TAKEN = {"Accepted", "RebootRequired"}


@dataclass(frozen=True)
class CommandRecord:
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


async def record_command(
    session: AsyncSession, *, record: CommandRecord
) -> tuple[int, list[Reservation]]:
    """Keep the command and what it changes in our data; returns the reservations it changed."""
    fields = {k: v for k, v in record.__dict__.items() if k != "new_password_hash"}
    row = Command(**fields)
    session.add(row)
    await session.flush()
    changed: list[Reservation] = []
    if record.response is not None:
        effect = _EFFECTS.get(record.action)
        if effect is not None:
            await effect(session, record)
        if record.action in _RESERVATION_ACTIONS and record.response.get("status") == "Accepted":
            reservation = await _reservation(
                session, record.charge_point_id, record.request["reservationId"]
            )
            changed = [reservation] if reservation is not None else []
    assert row.id is not None
    return row.id, changed


_RESERVATION_ACTIONS = frozenset({"ReserveNow", "CancelReservation"})


async def _set_profile(session: AsyncSession, record: CommandRecord) -> None:
    if record.response is None or record.response.get("status") != "Accepted":
        return
    connector_id = record.request["connectorId"]
    profile = record.request["csChargingProfiles"]
    stored = await _stored_profiles(session, record.charge_point_id)
    for key in replaced_by(stored, connector_id=connector_id, profile=profile):
        await _delete_profile(session, record.charge_point_id, key)
    session.add(
        ChargingProfile(
            charge_point_id=record.charge_point_id,
            connector_id=connector_id,
            charging_profile_id=profile["chargingProfileId"],
            stack_level=profile["stackLevel"],
            purpose=profile["chargingProfilePurpose"],
            transaction_id=profile.get("transactionId"),
            profile=profile,
            updated_at=record.completed_at,
        )
    )
    await session.flush()


async def _clear_profile(session: AsyncSession, record: CommandRecord) -> None:
    if record.response is None or record.response.get("status") != "Accepted":
        return
    stored = await _stored_profiles(session, record.charge_point_id)
    for key in cleared_by(stored, record.request):
        await _delete_profile(session, record.charge_point_id, key)


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


async def _reserve_now(session: AsyncSession, record: CommandRecord) -> None:
    accepted = record.response is not None and record.response.get("status") == "Accepted"
    request = record.request
    existing = await _reservation(session, record.charge_point_id, request["reservationId"])
    if not accepted:
        if existing is not None and existing.status == ReservationStatus.PENDING:
            await session.delete(existing)
        return
    expiry = parse_timestamp(request["expiryDate"], received=record.completed_at).value
    if existing is None:
        existing = Reservation(
            charge_point_id=record.charge_point_id,
            reservation_id=request["reservationId"],
            created_at=record.completed_at,
            connector_id=request["connectorId"],
            id_tag=request["idTag"],
            expiry_date=expiry,
            status=ReservationStatus.ACTIVE,
            updated_at=record.completed_at,
        )
        session.add(existing)
    # OCPP 1.6 §5.13: a ReserveNow with a known reservationId replaces that reservation.
    existing.connector_id = request["connectorId"]
    existing.id_tag = request["idTag"]
    existing.parent_id_tag = request.get("parentIdTag")
    existing.expiry_date = expiry
    existing.status = ReservationStatus.ACTIVE
    existing.updated_at = record.completed_at
    await session.flush()


async def _cancel_reservation(session: AsyncSession, record: CommandRecord) -> None:
    if record.response is None or record.response.get("status") != "Accepted":
        return
    await session.execute(
        update(Reservation)
        .where(
            col(Reservation.charge_point_id) == record.charge_point_id,
            col(Reservation.reservation_id) == record.request["reservationId"],
            col(Reservation.status) == ReservationStatus.ACTIVE,
        )
        .values(status=ReservationStatus.CANCELED, updated_at=record.completed_at)
    )


async def _reservation(
    session: AsyncSession, charge_point_id: str, reservation_id: int
) -> Reservation | None:
    rows = await session.execute(
        select(Reservation).where(
            col(Reservation.charge_point_id) == charge_point_id,
            col(Reservation.reservation_id) == reservation_id,
        )
    )
    return rows.scalars().first()


async def _local_list(session: AsyncSession, record: CommandRecord) -> None:
    response = record.response or {}
    if record.action == "SendLocalList" and response.get("status") == "Accepted":
        version = record.request["listVersion"]
    elif record.action == "GetLocalListVersion":
        version = response.get("listVersion")
    else:
        return
    await session.execute(
        update(ChargePoint)
        .where(col(ChargePoint.id) == record.charge_point_id)
        .values(local_list_version=version)
    )


async def _change_configuration(session: AsyncSession, record: CommandRecord) -> None:
    if record.request["key"] == "AuthorizationKey":
        await _rotate_password(session, record)
        return
    if record.response is None or record.response.get("status") not in _TAKEN:
        return
    await _store_key(session, record, record.request["key"], record.request["value"], None)


async def _rotate_password(session: AsyncSession, record: CommandRecord) -> None:
    # SecWP A01.FR.03-05: only an Accepted key replaces the old one; on Rejected or
    # NotSupported the old credentials keep working.
    if record.response is None or record.response.get("status") != "Accepted":
        return
    charge_point = await session.get(ChargePoint, record.charge_point_id)
    if charge_point is not None and record.new_password_hash is not None:
        charge_point.password_hash = record.new_password_hash
        charge_point.updated_at = record.completed_at


async def _get_configuration(session: AsyncSession, record: CommandRecord) -> None:
    for item in (record.response or {}).get("configurationKey", []):
        await _store_key(session, record, item["key"], item.get("value"), item["readonly"])


async def _store_key(
    session: AsyncSession,
    record: CommandRecord,
    key: str,
    value: str | None,
    readonly: bool | None,
) -> None:
    row = await session.get(ConfigurationKey, (record.charge_point_id, key))
    if row is None:
        row = ConfigurationKey(charge_point_id=record.charge_point_id, key=key)
        session.add(row)
    row.value = value
    if readonly is not None:
        row.readonly = readonly
    row.updated_at = record.completed_at
    await session.flush()


_EFFECTS = {
    "SetChargingProfile": _set_profile,
    "ClearChargingProfile": _clear_profile,
    "ReserveNow": _reserve_now,
    "CancelReservation": _cancel_reservation,
    "SendLocalList": _local_list,
    "GetLocalListVersion": _local_list,
    "ChangeConfiguration": _change_configuration,
    "GetConfiguration": _get_configuration,
}


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
