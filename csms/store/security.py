"""Writes and reads of the security extension: security events, issued certificates, log status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.charger import SecurityEventFacts
from csms.store import chargers
from csms.store.db import BulkWrite
from csms.store.tables import (
    ChargePoint,
    IssuedCertificate,
    SecurityEvent,
    UTCDateTime,
    table_of,
)


@cache
def _insert_security_event(dialect: str) -> Executable:
    return insert(table_of(SecurityEvent)).values(
        charge_point_id=bindparam("cp"),
        source=bindparam("p_source"),
        type=bindparam("p_type"),
        tech_info=bindparam("p_tech_info"),
        remote_address=bindparam("p_remote_address"),
        timestamp=bindparam("at", type_=UTCDateTime),
        received_at=bindparam("now", type_=UTCDateTime),
    )


def security_event(facts: SecurityEventFacts, *, now: datetime) -> BulkWrite:
    """Keep a security event (the application layer adds its `security.event`)."""
    row = {
        "cp": facts.charge_point_id,
        "p_source": facts.source.value,
        "p_type": facts.kind,
        "p_tech_info": facts.tech_info,
        "p_remote_address": facts.remote_address,
        "at": facts.timestamp,
        "now": now,
    }
    return BulkWrite(steps=((_insert_security_event, row),))


@cache
def _set_log_status(dialect: str) -> Executable:
    table = table_of(ChargePoint)
    return update(table).where(table.c.id == bindparam("cp")).values(log_status=bindparam("p_log"))


def log_status(
    *, charge_point_id: str, payload: dict[str, Any], status: str, now: datetime
) -> BulkWrite:
    """Keep a LogStatusNotification as it came (opaque JSON) and its status on the charger."""
    kept = chargers.charger_message(
        charge_point_id=charge_point_id, action="LogStatusNotification", payload=payload, now=now
    )
    step = (_set_log_status, {"cp": charge_point_id, "p_log": status})
    return BulkWrite(steps=(*kept.steps, step))


@cache
def _insert_issued_certificate(dialect: str) -> Executable:
    return insert(table_of(IssuedCertificate)).values(
        charge_point_id=bindparam("cp"),
        serial_number=bindparam("p_serial"),
        subject=bindparam("p_subject"),
        not_before=bindparam("p_not_before", type_=UTCDateTime),
        not_after=bindparam("p_not_after", type_=UTCDateTime),
        pem=bindparam("p_pem"),
        issued_at=bindparam("now", type_=UTCDateTime),
    )


def issued_certificate(
    *,
    charge_point_id: str,
    serial_number: str,
    subject: str,
    not_before: datetime,
    not_after: datetime,
    pem: str,
    now: datetime,
) -> BulkWrite:
    """Keep a certificate csms signed for a charger (`pem`: the certificate alone)."""
    row = {
        "cp": charge_point_id,
        "p_serial": serial_number,
        "p_subject": subject,
        "p_not_before": not_before,
        "p_not_after": not_after,
        "p_pem": pem,
        "now": now,
    }
    return BulkWrite(steps=((_insert_issued_certificate, row),))


async def list_security_events(
    session: AsyncSession, *, charge_point_id: str, limit: int = 50
) -> Sequence[SecurityEvent]:
    """A charger's security events, newest first."""
    rows = await session.execute(
        select(SecurityEvent)
        .where(col(SecurityEvent.charge_point_id) == charge_point_id)
        .order_by(col(SecurityEvent.id).desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def list_issued_certificates(
    session: AsyncSession, *, charge_point_id: str, limit: int = 50
) -> Sequence[IssuedCertificate]:
    """The certificates csms signed for a charger, newest first."""
    rows = await session.execute(
        select(IssuedCertificate)
        .where(col(IssuedCertificate.charge_point_id) == charge_point_id)
        .order_by(col(IssuedCertificate.id).desc())
        .limit(limit)
    )
    return list(rows.scalars())
