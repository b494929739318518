"""Handlers for every Charge Point -> Central System action of OCPP 1.6.

A handler takes the charger's context and the validated payload, commits what must be
kept, and returns the CALLRESULT payload. It never calls its own charger (that would
deadlock its receive loop); anything to send it goes through a separate task.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import structlog

from csms.core.clock import format_utc, parse_timestamp
from csms.core.meter import samples_from_meter_values
from csms.core.ocpi import SessionFacts
from csms.core.transactions import StartKey, start_flags
from csms.events import build
from csms.events.record import Recorder, session_facts, with_events
from csms.ocpp16.security_handlers import SECURITY_HANDLERS, CertificateSigning
from csms.store import repo
from csms.store.db import Database, Writer

log = structlog.get_logger("csms.ocpp")

VendorHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


@dataclass
class Services:
    """What handlers need from the rest of csms, shared by every connection."""

    writer: Writer
    database: Database
    recorder: Recorder
    clock: Clock
    heartbeat_interval: int
    # DataTransfer handlers by vendorId; unknown vendors get UnknownVendorId (§4.3).
    vendors: dict[str, VendorHandler] = field(default_factory=dict)
    # Signs SignCertificate CSRs (SecWP A02/A03); None answers them Rejected.
    certificates: CertificateSigning | None = None


@dataclass
class ChargerContext:
    """The charger a handler is serving."""

    charge_point_id: str
    services: Services
    accepted: bool = False
    location_id: str | None = None
    # Open transactions of this charger, for session.updated without a database read.
    transactions: dict[int, SessionFacts] = field(default_factory=dict)


Handler = Callable[[ChargerContext, dict[str, Any]], Awaitable[dict[str, Any]]]


async def on_boot_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    booted = build.booted(ctx.charge_point_id, at=now, payload=payload)
    await ctx.services.writer.submit_bulk(
        with_events(
            repo.boot(charge_point_id=ctx.charge_point_id, payload=payload, now=now),
            [booted],
            now=now,
        )
    )
    ctx.accepted = True
    log.info(
        "boot_accepted", vendor=payload["chargePointVendor"], model=payload["chargePointModel"]
    )
    return {
        "status": "Accepted",
        "currentTime": format_utc(now),
        "interval": ctx.services.heartbeat_interval,
    }


async def on_heartbeat(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    await ctx.services.writer.submit_bulk(repo.seen(charge_point_id=ctx.charge_point_id, now=now))
    # OCPP 1.6 §4.6: currentTime is the CSMS time; UTC with 'Z' (several chargers demand it).
    return {"currentTime": format_utc(now)}


async def on_authorize(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    info = await ctx.services.writer.submit(
        partial(
            ctx.services.recorder.authorize,
            charge_point_id=ctx.charge_point_id,
            id_tag=payload["idTag"],
            now=now,
        )
    )
    log.info("authorize", id_tag=payload["idTag"], status=info.status.value)
    return {"idTagInfo": info.to_ocpp()}


async def on_status_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    # §4.9: without a timestamp, the time of receipt is assumed.
    when = parse_timestamp(payload.get("timestamp", format_utc(now)), received=now)
    write = repo.connector_status(
        charge_point_id=ctx.charge_point_id, payload=payload, timestamp=when.value, now=now
    )
    if payload["connectorId"] >= 1:  # connector 0 is the charge point, not an EVSE
        event = build.evse_status(
            ctx.charge_point_id,
            party=ctx.services.recorder.party,
            connector_id=payload["connectorId"],
            ocpp_status=payload["status"],
            error_code=payload["errorCode"],
            info=payload.get("info"),
            vendor_error_code=payload.get("vendorErrorCode"),
            vendor_error_text=None,
            online=True,
            at=when.value,
        )
        write = with_events(write, [event], now=now)
    await ctx.services.writer.submit_bulk(write)
    return {}


async def on_meter_values(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    samples = samples_from_meter_values(payload["meterValue"], received=now)
    claimed = payload.get("transactionId")
    write = repo.meter_values(
        charge_point_id=ctx.charge_point_id,
        connector_id=payload["connectorId"],
        claimed_transaction_id=claimed,
        samples=samples,
        now=now,
    )
    write = ctx.services.recorder.meter_values(
        write,
        charge_point_id=ctx.charge_point_id,
        connector_id=payload["connectorId"],
        transaction_id=claimed,
        samples=samples,
        active=await _open_transaction(ctx, claimed),
        now=now,
    )
    await ctx.services.writer.submit_bulk(write)
    return {}


async def _open_transaction(ctx: ChargerContext, transaction_id: int | None) -> SessionFacts | None:
    """The open transaction a MeterValues names, from the cache or (after a reconnect) the DB."""
    if transaction_id is None or transaction_id <= 0:
        return None
    facts = ctx.transactions.get(transaction_id)
    if facts is not None:
        return facts
    async with ctx.services.database.sessions() as session:
        row = await repo.get_transaction(session, transaction_id)
    if row is None or row.charge_point_id != ctx.charge_point_id or row.stop_timestamp is not None:
        return None
    if row.start_timestamp is None:
        return None
    facts = session_facts(row, party=ctx.services.recorder.party, location_id=ctx.location_id)
    ctx.transactions[transaction_id] = facts
    return facts


async def on_start_transaction(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    started = parse_timestamp(payload["timestamp"], received=now)
    key = StartKey(
        charge_point_id=ctx.charge_point_id,
        connector_id=payload["connectorId"],
        id_tag=payload["idTag"],
        timestamp=started.value,
        meter_start=payload["meterStart"],
    )
    outcome, facts = await ctx.services.writer.submit(
        partial(
            ctx.services.recorder.start,
            key=key,
            reservation_id=payload.get("reservationId"),
            flags=start_flags(started),
            location_id=ctx.location_id,
            now=now,
        )
    )
    if facts is not None:
        ctx.transactions[outcome.transaction_id] = facts
    log.info(
        "transaction_started" if outcome.created else "transaction_start_repeated",
        transaction_id=outcome.transaction_id,
        connector_id=key.connector_id,
        id_tag_status=outcome.id_tag_info.status.value,
    )
    return {"transactionId": outcome.transaction_id, "idTagInfo": outcome.id_tag_info.to_ocpp()}


async def on_stop_transaction(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    request = repo.StopRequest(
        charge_point_id=ctx.charge_point_id,
        transaction_id=payload["transactionId"],
        id_tag=payload.get("idTag"),
        meter_stop=payload["meterStop"],
        stopped=parse_timestamp(payload["timestamp"], received=now),
        # OCPP-J errata §2.6: reason may be absent and then means Local.
        reason=payload.get("reason"),
        samples=samples_from_meter_values(payload.get("transactionData", ()), received=now),
    )
    info = await ctx.services.writer.submit(
        partial(ctx.services.recorder.stop, request=request, location_id=ctx.location_id, now=now)
    )
    ctx.transactions.pop(request.transaction_id, None)
    log.info("transaction_stopped", transaction_id=request.transaction_id, reason=request.reason)
    # OCPP 1.6 §4.10: always a CALLRESULT; idTagInfo only when the charger sent an idTag.
    return {} if info is None else {"idTagInfo": info.to_ocpp()}


async def on_data_transfer(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    await ctx.services.writer.submit_bulk(
        repo.charger_message(
            charge_point_id=ctx.charge_point_id, action="DataTransfer", payload=payload, now=now
        )
    )
    vendor = ctx.services.vendors.get(payload["vendorId"])
    if vendor is None:
        return {"status": "UnknownVendorId"}
    return await vendor(ctx.charge_point_id, payload)


def _status_recorder(action: str, column: str) -> Handler:
    async def handle(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
        await ctx.services.writer.submit_bulk(
            repo.charger_message(
                charge_point_id=ctx.charge_point_id,
                action=action,
                payload=payload,
                now=ctx.services.clock(),
                status_column=column,
            )
        )
        return {}

    return handle


HANDLERS: dict[str, Handler] = {
    "Authorize": on_authorize,
    "BootNotification": on_boot_notification,
    "DataTransfer": on_data_transfer,
    "DiagnosticsStatusNotification": _status_recorder(
        "DiagnosticsStatusNotification", "diagnostics_status"
    ),
    "FirmwareStatusNotification": _status_recorder("FirmwareStatusNotification", "firmware_status"),
    "Heartbeat": on_heartbeat,
    "MeterValues": on_meter_values,
    "StartTransaction": on_start_transaction,
    "StatusNotification": on_status_notification,
    "StopTransaction": on_stop_transaction,
    **SECURITY_HANDLERS,
}
