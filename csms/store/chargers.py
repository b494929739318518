"""Charge points and their connectors: registration, boot, connection, status, offline stages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache, partial
from typing import Any

from sqlalchemy import (
    JSON,
    Executable,
    Integer,
    String,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.charger import BootInfo, ConnectorStatusReport
from csms.store.db import BulkWrite, StatementFactory, set_form, unnest_rows
from csms.store.sql import dialect_insert, page, rowcount, upsert
from csms.store.tables import (
    ChargePoint,
    ChargerMessage,
    Connector,
    StatusNotification,
    UTCDateTime,
    table_of,
)


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
    stmt = dialect_insert(dialect, table_of(ChargePoint)).values(
        id=bindparam("cp"),
        created_at=now,
        updated_at=now,
        registration_status=bindparam("p_registration"),
        # Given, not left to the columns' Python-side defaults: SQLAlchemy computes those per
        # row (insert_prefetch), which keeps the insert off the compiled driver path
        # (`execute_many`, `_Prepared`); a boot storm of new chargers runs it for each one.
        security_profile=0,
        password_hex_compat=False,
        offline_stage=0,
    )
    insert_once: Executable = stmt.on_conflict_do_nothing(index_elements=["id"])
    return insert_once


def registration(
    *, charge_point_id: str, now: datetime, registration_status: str = "accepted"
) -> BulkWrite:
    """Create the charge point if it does not exist (first contact of an unknown charger)."""
    row = {"cp": charge_point_id, "now": now, "p_registration": registration_status}
    return BulkWrite(steps=((_insert_charge_point, row),))


async def upsert_charge_point(
    session: AsyncSession, *, charge_point_id: str, values: dict[str, Any], now: datetime
) -> bool:
    """Create or update a charge point from the API. Returns True when it was created."""
    return await upsert(session, ChargePoint, key={"id": charge_point_id}, values=values, now=now)


async def delete_charge_point(session: AsyncSession, *, charge_point_id: str) -> bool:
    await session.execute(
        delete(Connector).where(col(Connector.charge_point_id) == charge_point_id)
    )
    result = await session.execute(
        delete(ChargePoint).where(col(ChargePoint.id) == charge_point_id)
    )
    return bool(rowcount(result))


# BootInfo's fields, each kept in the charge point column of the same name.
_BOOT_FIELDS = (
    "vendor",
    "model",
    "serial_number",
    "charge_box_serial_number",
    "firmware_version",
    "iccid",
    "imsi",
    "meter_type",
    "meter_serial_number",
)


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


@cache
def _set_booted_not_accepted(dialect: str) -> Executable:
    table = table_of(ChargePoint)
    now = bindparam("now", type_=UTCDateTime)
    return (
        update(table)
        .where(table.c.id == bindparam("cp"))
        .values(
            boot_status=bindparam("p_boot_status"),
            last_boot_at=now,
            last_seen=now,
            updated_at=now,
            **{column: bindparam(f"p_{column}") for column in _BOOT_FIELDS},
        )
    )


def boot(
    *, charge_point_id: str, info: BootInfo, now: datetime, boot_status: str = "Accepted"
) -> BulkWrite:
    """Store what the charger says about itself and how its boot was answered; only an
    Accepted boot counts as the first acceptance (OCPP-J §5.4)."""
    row: dict[str, Any] = {"cp": charge_point_id, "now": now}
    row |= {f"p_{column}": getattr(info, column) for column in _BOOT_FIELDS}
    if boot_status == "Accepted":
        return BulkWrite(steps=((_set_booted, row),))
    row["p_boot_status"] = boot_status
    return BulkWrite(steps=((_set_booted_not_accepted, row),))


async def get_registration_status(session: AsyncSession, charge_point_id: str) -> str | None:
    """The operator's decision about a charger (accepted, pending, rejected), or None."""
    result = await session.execute(
        select(col(ChargePoint.registration_status)).where(col(ChargePoint.id) == charge_point_id)
    )
    status: str | None = result.scalar_one_or_none()
    return status


async def set_registration_status(
    session: AsyncSession, *, charge_point_id: str, status: str, now: datetime
) -> bool:
    """Record the operator's decision; False when the charger does not exist."""
    result = await session.execute(
        update(ChargePoint)
        .where(col(ChargePoint.id) == charge_point_id)
        .values(registration_status=status, updated_at=now)
    )
    return bool(rowcount(result))


@cache
def _replace_password_hash(dialect: str) -> Executable:
    table = table_of(ChargePoint)
    # Only if the hash is still the one that was checked: an operator's new password, set
    # meanwhile, must not be overwritten by the upgrade of the old one.
    return (
        update(table)
        .where(table.c.id == bindparam("cp"), table.c.password_hash == bindparam("p_old"))
        .values(password_hash=bindparam("p_new"))
    )


def password_upgrade(*, charge_point_id: str, old_hash: str, new_hash: str) -> BulkWrite:
    """Replace a password hash of an older scheme by its upgrade (docs/security.md)."""
    row = {"cp": charge_point_id, "p_old": old_hash, "p_new": new_hash}
    return BulkWrite(steps=((_replace_password_hash, row),))


async def find_by_serial_number(session: AsyncSession, serial_number: str) -> ChargePoint | None:
    """The charger whose last BootNotification gave this serial number (A00.FR.405)."""
    result = await session.execute(
        select(ChargePoint)
        .where(
            or_(
                col(ChargePoint.charge_box_serial_number) == serial_number,
                col(ChargePoint.serial_number) == serial_number,
            )
        )
        .limit(1)
    )
    return result.scalars().first()


@cache
def _set_connected_at(dialect: str, column: str) -> Executable:
    table = table_of(ChargePoint)
    now = bindparam("now", type_=UTCDateTime)
    values: dict[str, Any] = {column: now, "last_seen": now}
    if column == "connected_at":
        # The offline rules start again from the next disconnect.
        values["offline_stage"] = 0
    return update(table).where(table.c.id == bindparam("cp")).values(values)


_CONNECTION_COLUMNS: dict[bool, StatementFactory] = {
    True: partial(_set_connected_at, column="connected_at"),
    False: partial(_set_connected_at, column="disconnected_at"),
}


async def end_lost_connections(
    session: AsyncSession, *, only: Sequence[str] | None = None
) -> list[ChargePoint]:
    """Disconnect the chargers still shown connected, as of when each was last seen.

    `only` limits it to those chargers (cluster mode: the chargers of a dead node).

    Only right at start-up, before csms accepts connections: a charger shown connected
    then was connected to the previous process, which ended without recording the
    disconnect (a crash, SIGKILL or power cut). The offline rules then run from there.
    """
    table = table_of(ChargePoint)
    rows = await session.execute(
        select(ChargePoint)
        .where(
            table.c.connected_at.is_not(None),
            or_(table.c.disconnected_at.is_(None), table.c.disconnected_at < table.c.connected_at),
            table.c.id.in_(only) if only is not None else true(),
        )
        .order_by(table.c.id)
    )
    lost = list(rows.scalars())
    for charger in lost:
        assert charger.connected_at is not None
        seen = charger.last_seen or charger.connected_at
        charger.disconnected_at = max(seen, charger.connected_at)
    await session.flush()
    return lost


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


@set_form(_set_last_seen)
@cache
def _set_last_seens(dialect: str) -> Executable | None:
    """`_set_last_seen` for a batch in one statement (PostgreSQL); a charger heard twice in
    it keeps the later time, as the executemany left it."""
    if dialect != "postgresql":
        return None
    table = table_of(ChargePoint)
    rows = unnest_rows("r", {"cp": String, "now": UTCDateTime})
    last = (
        select(rows.c.cp, rows.c.now)
        .order_by(rows.c.cp, rows.c.ord.desc())
        .ext(distinct_on(rows.c.cp))
        .subquery("u")
    )
    return update(table).where(table.c.id == last.c.cp).values(last_seen=last.c.now)


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
    status: tuple[str, str] | None = None,
) -> BulkWrite:
    """Keep a message as it came (opaque JSON); `status` (column, value) mirrors a status
    it reports onto the charge point (firmware_status, diagnostics_status).
    """
    row = {"cp": charge_point_id, "p_action": action, "p_payload": payload, "now": now}
    steps: list[tuple[StatementFactory, dict[str, Any]]] = [(_insert_charger_message, row)]
    if status is not None:
        column, value = status
        steps.append((_STATUS_COLUMNS[column], {"cp": charge_point_id, "p_status": value}))
    return BulkWrite(steps=tuple(steps))


# -- connectors --


_STATUS_FIELDS = ("status", "error_code", "info", "vendor_id", "vendor_error_code")


@cache
def _upsert_connector(dialect: str) -> Executable:
    table = table_of(Connector)
    values: dict[str, Any] = {name: bindparam(f"p_{name}") for name in _STATUS_FIELDS}
    when = bindparam("at", type_=UTCDateTime)
    stmt = dialect_insert(dialect, table).values(
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
    *, charge_point_id: str, report: ConnectorStatusReport, now: datetime
) -> BulkWrite:
    """Set a connector's current status and append it to the history."""
    row = {
        "cp": charge_point_id,
        "conn": report.connector_id,
        "p_status": report.status,
        "p_error_code": report.error_code,
        "p_info": report.info,
        "p_vendor_id": report.vendor_id,
        "p_vendor_error_code": report.vendor_error_code,
        "at": report.timestamp,
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


# -- offline chargers --


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


async def list_charge_points(
    session: AsyncSession, *, limit: int, offset: int, registration_status: str | None = None
) -> tuple[list[ChargePoint], int]:
    where = (
        None
        if registration_status is None
        else col(ChargePoint.registration_status) == registration_status
    )
    return await page(session, ChargePoint, where, col(ChargePoint.id), limit, offset)
