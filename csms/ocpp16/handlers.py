"""Handlers for every Charge Point -> Central System action of OCPP 1.6.

Each is *convert -> application call -> answer*: the payload (schema-valid) becomes a
typed message in `convert.py`, a flow of `csms/flows/` commits it with its events, and
the CALLRESULT payload is built here. A handler never calls its own charger (that would
deadlock its receive loop); anything to send it goes through a separate task.
"""

from __future__ import annotations

import random
from typing import Any

import structlog

from csms.core.clock import format_utc
from csms.core.registration import RegistrationStatus, retry_interval
from csms.core.transactions import start_flags
from csms.ocpp16 import convert
from csms.ocpp16.context import ChargerContext, Handler
from csms.ocpp16.security_handlers import SECURITY_HANDLERS

log = structlog.get_logger("csms.ocpp")


async def on_boot_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    info = convert.boot_info(payload)
    status = await ctx.services.chargers.booted(
        charge_point_id=ctx.charge_point_id, info=info, now=now, registration=ctx.registration
    )
    ctx.registration = status
    if status is not RegistrationStatus.ACCEPTED:
        # OCPP 1.6 §4.2: Pending or Rejected; `interval` is the least wait before the next
        # BootNotification, spread a little so that a fleet does not come back at once.
        ctx.accepted = False
        log.info("boot_not_accepted", status=status.boot_status, vendor=info.vendor)
        interval = retry_interval(ctx.services.pending_interval, jitter=random.random())
        return {"status": status.boot_status, "currentTime": format_utc(now), "interval": interval}
    ctx.accepted = True
    log.info("boot_accepted", vendor=info.vendor, model=info.model)
    return {
        "status": "Accepted",
        "currentTime": format_utc(now),
        "interval": ctx.services.heartbeat_interval,
    }


async def on_heartbeat(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    await ctx.services.chargers.seen(charge_point_id=ctx.charge_point_id, now=now)
    # OCPP 1.6 §4.6: currentTime is the CSMS time; UTC with 'Z' (several chargers demand it).
    return {"currentTime": format_utc(now)}


async def on_authorize(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    info = await ctx.services.sessions.authorize(
        charge_point_id=ctx.charge_point_id, id_tag=payload["idTag"], now=ctx.services.clock()
    )
    log.info("authorize", id_tag=payload["idTag"], status=info.status.value)
    return {"idTagInfo": info.to_ocpp()}


async def on_status_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    report = convert.status_report(payload, received=now)
    await ctx.services.chargers.connector_status(
        charge_point_id=ctx.charge_point_id, report=report, now=now
    )
    return {}


async def on_meter_values(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    await ctx.services.sessions.record_meter_values(
        charge_point_id=ctx.charge_point_id,
        connector_id=payload["connectorId"],
        transaction_id=payload.get("transactionId"),
        samples=convert.samples(payload["meterValue"], received=now),
        location_id=ctx.location_id,
        open_sessions=ctx.transactions,
        now=now,
    )
    return {}


async def on_start_transaction(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    key, started = convert.start_key(ctx.charge_point_id, payload, received=now)
    outcome = await ctx.services.sessions.start(
        key=key,
        reservation_id=payload.get("reservationId"),
        flags=start_flags(started),
        location_id=ctx.location_id,
        open_sessions=ctx.transactions,
        now=now,
    )
    log.info(
        "transaction_started" if outcome.created else "transaction_start_repeated",
        transaction_id=outcome.transaction_id,
        connector_id=key.connector_id,
        id_tag_status=outcome.id_tag_info.status.value,
    )
    return {"transactionId": outcome.transaction_id, "idTagInfo": outcome.id_tag_info.to_ocpp()}


async def on_stop_transaction(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    now = ctx.services.clock()
    request = convert.stop_request(ctx.charge_point_id, payload, received=now)
    info = await ctx.services.sessions.stop(
        request=request, location_id=ctx.location_id, open_sessions=ctx.transactions, now=now
    )
    log.info("transaction_stopped", transaction_id=request.transaction_id, reason=request.reason)
    # OCPP 1.6 §4.10: always a CALLRESULT; idTagInfo only when the charger sent an idTag.
    return {} if info is None else {"idTagInfo": info.to_ocpp()}


async def on_data_transfer(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.chargers.message(
        charge_point_id=ctx.charge_point_id,
        action="DataTransfer",
        payload=payload,
        now=ctx.services.clock(),
    )
    vendor = ctx.services.vendors.get(payload["vendorId"])
    if vendor is None:
        return {"status": "UnknownVendorId"}
    return await vendor(ctx.charge_point_id, payload)


def status_keeper(action: str) -> Handler:
    """A handler that keeps a status notification as it came and mirrors its status."""

    async def handle(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
        await ctx.services.chargers.message(
            charge_point_id=ctx.charge_point_id,
            action=action,
            payload=payload,
            now=ctx.services.clock(),
            status=payload["status"],
        )
        return {}

    return handle


HANDLERS: dict[str, Handler] = {
    "Authorize": on_authorize,
    "BootNotification": on_boot_notification,
    "DataTransfer": on_data_transfer,
    "DiagnosticsStatusNotification": status_keeper("DiagnosticsStatusNotification"),
    "FirmwareStatusNotification": status_keeper("FirmwareStatusNotification"),
    "Heartbeat": on_heartbeat,
    "MeterValues": on_meter_values,
    "StartTransaction": on_start_transaction,
    "StatusNotification": on_status_notification,
    "StopTransaction": on_stop_transaction,
    **SECURITY_HANDLERS,
}
