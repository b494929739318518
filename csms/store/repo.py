"""Queries and writes. Write functions take the writer's session and are safe to run again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Executable,
    Float,
    Integer,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.authorize import AuthorizationStatus, IdTagInfo, IdTagRecord, authorize
from csms.core.clock import ParsedTime
from csms.core.meter import Sample, latest_register
from csms.core.transactions import (
    FORCED_STOP_REASON,
    IMPLICIT_END_REASON,
    StartKey,
    TransactionFlag,
    merge_flags,
    stop_flags,
)
from csms.store.commands import use_reservation
from csms.store.db import BulkWrite, StatementFactory
from csms.store.tables import (
    ChargePoint,
    ChargerMessage,
    Connector,
    IdTag,
    MeterValue,
    Reservation,
    StatusNotification,
    Transaction,
    User,
    UTCDateTime,
    VendorErrorCode,
    table_of,
)


def _dialect_insert(dialect: str, table: Table) -> Any:
    """INSERT for a dialect, so ON CONFLICT is available on both SQLite and PostgreSQL."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    return _dialect_insert(session.get_bind().dialect.name, table_of(model))


async def _upsert(
    session: AsyncSession,
    model: type[ChargePoint | IdTag | User],
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


# -- charge points -------------------------------------------------------------------------


async def get_charge_point(session: AsyncSession, charge_point_id: str) -> ChargePoint | None:
    return await session.get(ChargePoint, charge_point_id)


async def get_charge_points(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> Sequence[ChargePoint]:
    """The charge points among `charge_point_ids` that exist (any order)."""
    result = await session.execute(
        select(ChargePoint).where(col(ChargePoint.id).in_(charge_point_ids))
    )
    return result.scalars().all()


@cache
def _insert_charge_point(dialect: str) -> Executable:
    now = bindparam("now", type_=UTCDateTime)
    stmt = _dialect_insert(dialect, table_of(ChargePoint)).values(
        id=bindparam("cp"), created_at=now, updated_at=now
    )
    insert_once: Executable = stmt.on_conflict_do_nothing(index_elements=["id"])
    return insert_once


def registration(*, charge_point_id: str, now: datetime) -> BulkWrite:
    """Create the charge point if it does not exist (first contact of an unknown charger)."""
    return BulkWrite(steps=((_insert_charge_point, {"cp": charge_point_id, "now": now}),))


async def upsert_charge_point(
    session: AsyncSession, *, charge_point_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a charge point from the API. Returns True when it was created."""
    return await _upsert(session, ChargePoint, key={"id": charge_point_id}, values=values, now=now)


async def delete_charge_point(session: AsyncSession, *, charge_point_id: str) -> bool:
    await session.execute(
        delete(Connector).where(col(Connector.charge_point_id) == charge_point_id)
    )
    result = await session.execute(
        delete(ChargePoint).where(col(ChargePoint.id) == charge_point_id)
    )
    return bool(getattr(result, "rowcount", 0))


_BOOT_FIELDS = {
    "vendor": "chargePointVendor",
    "model": "chargePointModel",
    "serial_number": "chargePointSerialNumber",
    "charge_box_serial_number": "chargeBoxSerialNumber",
    "firmware_version": "firmwareVersion",
    "iccid": "iccid",
    "imsi": "imsi",
    "meter_type": "meterType",
    "meter_serial_number": "meterSerialNumber",
}


@cache
def _set_booted(dialect: str) -> Executable:
    table = table_of(ChargePoint)
    now = bindparam("now", type_=UTCDateTime)
    return (
        update(table)
        .where(table.c.id == bindparam("cp"))
        .values(
            boot_status="Accepted",
            last_boot_at=now,
            last_seen=now,
            updated_at=now,
            first_accepted_at=func.coalesce(table.c.first_accepted_at, now),
            **{column: bindparam(f"p_{column}") for column in _BOOT_FIELDS},
        )
    )


def boot(*, charge_point_id: str, payload: dict[str, Any], now: datetime) -> BulkWrite:
    """Store what the charger says about itself and that it was accepted."""
    row = {"cp": charge_point_id, "now": now}
    row |= {f"p_{column}": payload.get(field) for column, field in _BOOT_FIELDS.items()}
    return BulkWrite(steps=((_set_booted, row),))


@cache
def _set_connected_at(dialect: str, column: str) -> Executable:
    table = table_of(ChargePoint)
    now = bindparam("now", type_=UTCDateTime)
    return (
        update(table).where(table.c.id == bindparam("cp")).values({column: now, "last_seen": now})
    )


_CONNECTION_COLUMNS: dict[bool, StatementFactory] = {
    True: partial(_set_connected_at, column="connected_at"),
    False: partial(_set_connected_at, column="disconnected_at"),
}


def connection_change(*, charge_point_id: str, connected: bool, now: datetime) -> BulkWrite:
    """The charger connected or disconnected."""
    return BulkWrite(steps=((_CONNECTION_COLUMNS[connected], {"cp": charge_point_id, "now": now}),))


@cache
def _set_last_seen(dialect: str) -> Executable:
    table = table_of(ChargePoint)
    return (
        update(table)
        .where(table.c.id == bindparam("cp"))
        .values(last_seen=bindparam("now", type_=UTCDateTime))
    )


def seen(*, charge_point_id: str, now: datetime) -> BulkWrite:
    """The charger was heard from (Heartbeat)."""
    return BulkWrite(steps=((_set_last_seen, {"cp": charge_point_id, "now": now}),))


@cache
def _insert_charger_message(dialect: str) -> Executable:
    table = table_of(ChargerMessage)
    return insert(table).values(
        charge_point_id=bindparam("cp"),
        action=bindparam("p_action"),
        payload=bindparam("p_payload", type_=JSON),
        received_at=bindparam("now", type_=UTCDateTime),
    )


@cache
def _set_status_column(dialect: str, column: str) -> Executable:
    table = table_of(ChargePoint)
    return (
        update(table).where(table.c.id == bindparam("cp")).values({column: bindparam("p_status")})
    )


_STATUS_COLUMNS: dict[str, StatementFactory] = {
    column: partial(_set_status_column, column=column)
    for column in ("firmware_status", "diagnostics_status")
}


def charger_message(
    *,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    now: datetime,
    status_column: str | None = None,
) -> BulkWrite:
    """Keep a message as it came; optionally mirror its status onto the charge point."""
    row = {"cp": charge_point_id, "p_action": action, "p_payload": payload, "now": now}
    steps: list[tuple[StatementFactory, dict[str, Any]]] = [(_insert_charger_message, row)]
    if status_column is not None:
        update_row = {"cp": charge_point_id, "p_status": payload["status"]}
        steps.append((_STATUS_COLUMNS[status_column], update_row))
    return BulkWrite(steps=tuple(steps))


# -- connectors ----------------------------------------------------------------------------


_STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code")


@cache
def _upsert_connector(dialect: str) -> Executable:
    table = table_of(Connector)
    values: dict[str, Any] = {name: bindparam(f"p_{name}") for name in _STATUS_FIELDS}
    when = bindparam("at", type_=UTCDateTime)
    stmt = _dialect_insert(dialect, table).values(
        charge_point_id=bindparam("cp"),
        connector_id=bindparam("conn", type_=Integer),
        updated_at=when,
        **values,
    )
    excluded = stmt.excluded
    # A status queued offline may arrive after a newer one; keep the newest as current.
    upsert: Executable = stmt.on_conflict_do_update(
        index_elements=["charge_point_id", "connector_id"],
        set_={name: excluded[name] for name in (*_STATUS_FIELDS, "updated_at")},
        where=or_(table.c.updated_at.is_(None), table.c.updated_at <= excluded.updated_at),
    )
    return upsert


@cache
def _insert_status_history(dialect: str) -> Executable:
    table = table_of(StatusNotification)
    return insert(table).values(
        charge_point_id=bindparam("cp"),
        connector_id=bindparam("conn", type_=Integer),
        timestamp=bindparam("at", type_=UTCDateTime),
        received_at=bindparam("now", type_=UTCDateTime),
        **{name: bindparam(f"p_{name}") for name in _STATUS_FIELDS},
    )


def connector_status(
    *, charge_point_id: str, payload: dict[str, Any], timestamp: datetime, now: datetime
) -> BulkWrite:
    """Set a connector's current status and append it to the history."""
    row = {
        "cp": charge_point_id,
        "conn": payload["connectorId"],
        "p_status": payload["status"],
        "p_error_code": payload["errorCode"],
        "p_info": payload.get("info"),
        "p_vendor_id": payload.get("vendorId"),
        "p_vendor_error_code": payload.get("vendorErrorCode"),
        "at": timestamp,
        "now": now,
    }
    return BulkWrite(steps=((_upsert_connector, row), (_insert_status_history, row)))


async def list_connectors(
    session: AsyncSession, charge_point_ids: Sequence[str]
) -> list[Connector]:
    if not charge_point_ids:
        return []
    result = await session.execute(
        select(Connector)
        .where(col(Connector.charge_point_id).in_(charge_point_ids))
        .order_by(col(Connector.charge_point_id), col(Connector.connector_id))
    )
    return list(result.scalars())


# -- id tags -------------------------------------------------------------------------------


async def get_id_tag(session: AsyncSession, id_tag: str) -> IdTag | None:
    return await session.get(IdTag, id_tag)


async def authorize_id_tag(session: AsyncSession, *, id_tag: str, now: datetime) -> IdTagInfo:
    """The IdTagInfo for a tag, from the id-tags table."""
    row = await session.get(IdTag, id_tag)
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
    return await _upsert(session, IdTag, key={"id_tag": id_tag}, values=values, now=now)


async def delete_id_tag(session: AsyncSession, *, id_tag: str) -> bool:
    result = await session.execute(delete(IdTag).where(col(IdTag.id_tag) == id_tag))
    return bool(getattr(result, "rowcount", 0))


# -- offline chargers ----------------------------------------------------------------------


async def offline_due(
    session: AsyncSession, *, stage: int, offline_since: datetime
) -> list[tuple[ChargePoint, list[Connector]]]:
    """Chargers offline since before the time that have not reached the stage yet."""
    table = table_of(ChargePoint)
    rows = await session.execute(
        select(ChargePoint).where(
            table.c.disconnected_at.is_not(None),
            or_(table.c.connected_at.is_(None), table.c.disconnected_at >= table.c.connected_at),
            table.c.disconnected_at <= offline_since,
            table.c.offline_stage < stage,
        )
    )
    chargers = list(rows.scalars())
    connectors = await list_connectors(session, [charger.id for charger in chargers])
    return [(c, [x for x in connectors if x.charge_point_id == c.id]) for c in chargers]


async def set_offline_stage(session: AsyncSession, *, charge_point_id: str, stage: int) -> None:
    await session.execute(
        update(ChargePoint)
        .where(col(ChargePoint.id) == charge_point_id)
        .values(offline_stage=stage)
    )


# -- users and vendor error codes ----------------------------------------------------------


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def upsert_user(
    session: AsyncSession, *, user_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a user. Returns True when it was created."""
    return await _upsert(session, User, key={"id": user_id}, values=values, now=now)


async def delete_user(session: AsyncSession, *, user_id: str) -> bool:
    # The user's tags stay usable; they just no longer have an owner.
    await session.execute(update(IdTag).where(col(IdTag.user_id) == user_id).values(user_id=None))
    result = await session.execute(delete(User).where(col(User.id) == user_id))
    return bool(getattr(result, "rowcount", 0))


async def list_users(session: AsyncSession, *, limit: int, offset: int) -> tuple[list[User], int]:
    return await _page(session, User, None, col(User.id), limit, offset)


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
    return bool(getattr(result, "rowcount", 0))


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


# -- transactions --------------------------------------------------------------------------


async def force_stop(session: AsyncSession, *, transaction_id: int, now: datetime) -> None:
    """End a transaction in our data now (operator's force stop).

    The charger's own StopTransaction may still come: `charger_stopped` stays false, so its
    values replace ours once, as for an implicitly ended transaction.
    """
    row = await session.get(Transaction, transaction_id)
    if row is None or row.stop_timestamp is not None:
        return
    row.stop_timestamp = now
    row.stop_reason = FORCED_STOP_REASON
    row.flags = merge_flags(row.flags, [TransactionFlag.FORCED_STOP])
    row.updated_at = now
    await session.flush()


@dataclass(frozen=True)
class StartOutcome:
    transaction_id: int
    id_tag_info: IdTagInfo
    created: bool
    # Reservations this start fulfilled ('done').
    reservations: list[Reservation] = field(default_factory=list)


async def start_transaction(
    session: AsyncSession,
    *,
    key: StartKey,
    reservation_id: int | None,
    flags: Sequence[TransactionFlag],
    now: datetime,
) -> StartOutcome:
    """Record a StartTransaction once, however often it is sent.

    OCPP 1.6 §4.8 and errata §3.17: a transactionId goes back whatever the tag's status.
    """
    info = await authorize_id_tag(session, id_tag=key.id_tag, now=now)
    key_values = {
        "charge_point_id": key.charge_point_id,
        "connector_id": key.connector_id,
        "id_tag": key.id_tag,
        "start_timestamp": key.timestamp,
        "meter_start": key.meter_start,
    }
    stmt = (
        _insert(session, Transaction)
        .values(
            **key_values,
            start_id_tag_status=info.status.value,
            reservation_id=reservation_id,
            charger_stopped=False,
            flags=[flag.value for flag in flags],
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=list(key_values))
        .returning(table_of(Transaction).c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is None:
        table = table_of(Transaction)
        existing = await session.execute(
            select(table.c.id).where(
                *(table.c[name] == value for name, value in key_values.items())
            )
        )
        row_id = existing.scalar_one()
        return StartOutcome(transaction_id=int(row_id), id_tag_info=info, created=False)
    await _end_open_transactions(session, key=key, keep=inserted, now=now)
    fulfilled = await use_reservation(
        session,
        charge_point_id=key.charge_point_id,
        connector_id=key.connector_id,
        id_tag=key.id_tag,
        reservation_id=reservation_id,
        transaction_id=inserted,
        now=now,
    )
    return StartOutcome(
        transaction_id=inserted, id_tag_info=info, created=True, reservations=fulfilled
    )


async def _end_open_transactions(
    session: AsyncSession, *, key: StartKey, keep: int, now: datetime
) -> None:
    """A Start on a connector with an open transaction means its Stop was lost: end it here."""
    result = await session.execute(
        select(Transaction).where(
            col(Transaction.charge_point_id) == key.charge_point_id,
            col(Transaction.connector_id) == key.connector_id,
            col(Transaction.stop_timestamp).is_(None),
            col(Transaction.id) != keep,
            col(Transaction.start_timestamp) <= key.timestamp,
        )
    )
    for previous in result.scalars():
        previous.stop_timestamp = key.timestamp
        previous.stop_reason = IMPLICIT_END_REASON
        previous.flags = merge_flags(previous.flags, [TransactionFlag.IMPLICITLY_ENDED])
        previous.updated_at = now
    await session.flush()


@dataclass(frozen=True)
class StopRequest:
    charge_point_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop: int
    stopped: ParsedTime
    reason: str | None
    samples: Sequence[Sample]


@dataclass(frozen=True)
class StopOutcome:
    id_tag_info: IdTagInfo | None
    # The transaction this Stop ended, the first time the charger's stop is recorded.
    stopped: int | None


async def stop_transaction(
    session: AsyncSession, *, request: StopRequest, now: datetime
) -> StopOutcome:
    """Record one stop per transaction, whatever the charger resends.

    OCPP 1.6 §4.10: the CSMS cannot refuse a stop, so an unknown id (or -1, errata §3.18)
    is kept as an orphan transaction instead of being answered with an error.
    """
    info = (
        await authorize_id_tag(session, id_tag=request.id_tag, now=now)
        if request.id_tag is not None
        else None
    )
    row = await session.get(Transaction, request.transaction_id)
    if row is not None and row.charge_point_id == request.charge_point_id:
        recorded = await _stop_known(session, row=row, request=request, now=now)
        return StopOutcome(id_tag_info=info, stopped=row.id if recorded else None)
    await _stop_orphan(session, request=request, now=now)
    return StopOutcome(id_tag_info=info, stopped=None)


async def claim_cdr(session: AsyncSession, *, transaction_id: int, now: datetime) -> bool:
    """True once per transaction: the caller emits its one CDR (flag `cdr_created`)."""
    row = await session.get(Transaction, transaction_id)
    if row is None or TransactionFlag.CDR_CREATED.value in row.flags:
        return False
    row.flags = merge_flags(row.flags, [TransactionFlag.CDR_CREATED])
    row.updated_at = now
    await session.flush()
    return True


async def transaction_samples(session: AsyncSession, transaction_id: int) -> list[MeterValue]:
    rows = await session.execute(
        select(MeterValue)
        .where(col(MeterValue.transaction_id) == transaction_id)
        .order_by(col(MeterValue.timestamp), col(MeterValue.id))
    )
    return list(rows.scalars())


async def _stop_known(
    session: AsyncSession, *, row: Transaction, request: StopRequest, now: datetime
) -> bool:
    flags = stop_flags(
        meter_start=row.meter_start if row.meter_start is not None else request.meter_stop,
        meter_stop=request.meter_stop,
        started_at=row.start_timestamp,
        stopped=request.stopped,
    )
    # The conditional UPDATE is the guard: of two concurrent Stops (two processes), one wins.
    result = await session.execute(
        update(Transaction)
        .where(col(Transaction.id) == row.id, col(Transaction.charger_stopped).is_(False))
        .values(
            meter_stop=request.meter_stop,
            stop_timestamp=request.stopped.value,
            stop_reason=request.reason or "Local",
            stop_id_tag=request.id_tag,
            charger_stopped=True,
            flags=merge_flags(row.flags, flags),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    assert row.id is not None
    await _insert_samples(
        session,
        charge_point_id=request.charge_point_id,
        connector_id=row.connector_id,
        transaction_id=row.id,
        samples=request.samples,
        now=now,
    )
    return True


async def _stop_orphan(session: AsyncSession, *, request: StopRequest, now: datetime) -> None:
    flags = stop_flags(
        meter_start=request.meter_stop,
        meter_stop=request.meter_stop,
        started_at=None,
        stopped=request.stopped,
    )
    stmt = (
        _insert(session, Transaction)
        .values(
            charge_point_id=request.charge_point_id,
            connector_id=0,
            orphan_ref=request.transaction_id,
            meter_stop=request.meter_stop,
            stop_timestamp=request.stopped.value,
            stop_reason=request.reason or "Local",
            stop_id_tag=request.id_tag,
            charger_stopped=True,
            flags=merge_flags([], [TransactionFlag.ORPHAN_STOP, *flags]),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["charge_point_id", "orphan_ref", "stop_timestamp"])
        .returning(table_of(Transaction).c.id)
    )
    inserted = (await session.execute(stmt)).scalar_one_or_none()
    if inserted is not None:
        await _insert_samples(
            session,
            charge_point_id=request.charge_point_id,
            connector_id=0,
            transaction_id=inserted,
            samples=request.samples,
            now=now,
        )


def _linked_transaction() -> Any:
    """The transaction a sample belongs to, decided in SQL so samples can be bulk-inserted.

    The charger's transactionId when it is this charger's; otherwise (unknown, 0 or -1) the
    transaction open on the connector at the sample's time (reliability note §2.4). Connector
    0 samples belong to none (1.6 errata §3.16).
    """
    tx = table_of(Transaction)
    cp: Any = bindparam("cp")
    connector = bindparam("conn", type_=Integer)
    at = bindparam("at", type_=UTCDateTime)
    claimed = (
        select(tx.c.id)
        .where(tx.c.id == bindparam("claimed", type_=BigInteger), tx.c.charge_point_id == cp)
        .scalar_subquery()
    )
    by_time = (
        select(tx.c.id)
        .where(
            tx.c.charge_point_id == cp,
            tx.c.connector_id == connector,
            connector > 0,
            tx.c.start_timestamp <= at,
            or_(tx.c.stop_timestamp.is_(None), tx.c.stop_timestamp >= at),
        )
        .order_by(tx.c.start_timestamp.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(claimed, by_time)


_SAMPLE_FIELDS = ("value", "measurand", "unit", "context", "location", "phase", "format")


@cache
def _insert_sample(dialect: str) -> Executable:
    stmt = _dialect_insert(dialect, table_of(MeterValue)).values(
        charge_point_id=bindparam("cp"),
        connector_id=bindparam("conn", type_=Integer),
        transaction_id=_linked_transaction(),
        claimed_transaction_id=bindparam("claimed", type_=BigInteger),
        timestamp=bindparam("at", type_=UTCDateTime),
        flags=bindparam("p_flags", type_=JSON),
        received_at=bindparam("now", type_=UTCDateTime),
        **{name: bindparam(f"p_{name}") for name in _SAMPLE_FIELDS},
    )
    # A resent sample (same connector, instant, measurand, phase, location, context) is kept once.
    insert_once: Executable = stmt.on_conflict_do_nothing()
    return insert_once


@cache
def _set_register(dialect: str) -> Executable:
    tx = table_of(Transaction)
    return (
        update(tx)
        .where(tx.c.id == _linked_transaction(), tx.c.stop_timestamp.is_(None))
        .values(
            last_register_wh=bindparam("wh", type_=Float),
            updated_at=bindparam("now", type_=UTCDateTime),
        )
    )


def meter_values(
    *,
    charge_point_id: str,
    connector_id: int,
    claimed_transaction_id: int | None,
    samples: Sequence[Sample],
    now: datetime,
) -> BulkWrite:
    """Store every sample (never drop, reliability note F16) and the session's energy so far."""
    base = {"cp": charge_point_id, "conn": connector_id, "claimed": claimed_transaction_id}
    steps: list[tuple[StatementFactory, dict[str, Any]]] = [
        (_insert_sample, _sample_row(base, sample, now)) for sample in samples
    ]
    latest = latest_register(samples)
    if latest is not None:
        at, wh = latest
        steps.append((_set_register, {**base, "at": at, "wh": wh, "now": now}))
    return BulkWrite(steps=tuple(steps))


def _sample_row(base: dict[str, Any], sample: Sample, now: datetime) -> dict[str, Any]:
    # Spelled out (every sample of every MeterValues comes through here); the keys are
    # _insert_sample's parameters, p_ + each of _SAMPLE_FIELDS.
    return {
        **base,
        "p_value": sample.value,
        "p_measurand": sample.measurand,
        "p_unit": sample.unit,
        "p_context": sample.context,
        "p_location": sample.location,
        "p_phase": sample.phase,
        "p_format": sample.format,
        "at": sample.timestamp,
        "p_flags": list(sample.flags),
        "now": now,
    }


async def _insert_samples(
    session: AsyncSession,
    *,
    charge_point_id: str,
    connector_id: int,
    transaction_id: int,
    samples: Sequence[Sample],
    now: datetime,
) -> None:
    """Insert a Stop's transactionData, linked to its (possibly orphan) transaction."""
    if not samples:
        return
    base = {"cp": charge_point_id, "conn": connector_id, "claimed": transaction_id}
    rows = [_sample_row(base, sample, now) for sample in samples]
    dialect = session.get_bind().dialect.name
    await (await session.connection()).execute(_insert_sample(dialect), rows)


async def get_transaction(session: AsyncSession, transaction_id: int) -> Transaction | None:
    return await session.get(Transaction, transaction_id)


async def list_transactions(
    session: AsyncSession,
    *,
    charge_point_id: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Transaction], int]:
    conditions: list[ColumnElement[bool]] = []
    if charge_point_id is not None:
        conditions.append(col(Transaction.charge_point_id) == charge_point_id)
    if active is True:
        conditions.append(col(Transaction.stop_timestamp).is_(None))
    elif active is False:
        conditions.append(col(Transaction.stop_timestamp).is_not(None))
    where = and_(*conditions) if conditions else None
    return await _page(session, Transaction, where, col(Transaction.id), limit, offset)


async def list_meter_values(
    session: AsyncSession, *, transaction_id: int, limit: int, offset: int
) -> tuple[list[MeterValue], int]:
    where = col(MeterValue.transaction_id) == transaction_id
    order = (col(MeterValue.timestamp), col(MeterValue.id))
    total = (
        await session.execute(select(func.count()).select_from(MeterValue).where(where))
    ).scalar_one()
    rows = await session.execute(
        select(MeterValue).where(where).order_by(*order).limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)


async def list_charge_points(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[ChargePoint], int]:
    return await _page(session, ChargePoint, None, col(ChargePoint.id), limit, offset)


async def list_id_tags(
    session: AsyncSession, *, status: str | None, user_id: str | None, limit: int, offset: int
) -> tuple[list[IdTag], int]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(col(IdTag.status) == status)
    if user_id is not None:
        conditions.append(col(IdTag.user_id) == user_id)
    where = and_(*conditions) if conditions else None
    return await _page(session, IdTag, where, col(IdTag.id_tag), limit, offset)


async def _page(
    session: AsyncSession,
    model: type[Any],
    where: ColumnElement[bool] | None,
    order: Any,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    query = select(model)
    count = select(func.count()).select_from(model)
    if where is not None:
        query = query.where(where)
        count = count.where(where)
    total = (await session.execute(count)).scalar_one()
    rows = await session.execute(query.order_by(order).limit(limit).offset(offset))
    return list(rows.scalars()), int(total)
