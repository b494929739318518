"""Handlers for the charger -> CSMS messages of the OCPP 1.6 Security Whitepaper (edition 3).

SecurityEventNotification (A04), SignCertificate (A02/A03), LogStatusNotification (N01)
and SignedFirmwareStatusNotification (L01), registered in `handlers.HANDLERS`. Like every
handler, these commit before they answer and never call their own charger: the signed
certificate goes back in CertificateSigned.req from a task of
`csms.flows.certificates.CertificateSigning`.
"""

from __future__ import annotations

from typing import Any

import structlog

from csms.core.certificates import CsrRejected
from csms.core.charger import SecurityEventFacts
from csms.core.clock import parse_timestamp
from csms.core.security import ClientCnRule
from csms.core.security_events import CsmsSecurityEventType, SecurityEventSource, is_critical
from csms.ocpp16.context import ChargerContext, Handler

log = structlog.get_logger("csms.ocpp")


async def on_security_event_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    now = ctx.services.clock()
    facts = SecurityEventFacts(
        charge_point_id=ctx.charge_point_id,
        kind=payload["type"],
        timestamp=parse_timestamp(payload["timestamp"], received=now).value,
        source=SecurityEventSource.CHARGER,
        tech_info=payload.get("techInfo"),
    )
    # SecWP A04.FR.03: confirmed only once stored, so a queued event is never lost (A04.FR.02).
    await ctx.services.chargers.security_event(facts, now=now)
    critical = is_critical(payload["type"])
    (log.warning if critical else log.info)(
        "security_event", type=payload["type"], critical=critical, tech_info=payload.get("techInfo")
    )
    return {}


async def on_sign_certificate(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    signing = ctx.services.certificates
    if signing is None:
        # SecWP A02.FR.12/A03.FR.12: not able to process the request.
        log.info("csr_rejected", reason="no signing ca configured ([security] ca_key_file)")
        return {"status": "Rejected"}
    serials: tuple[str, ...] = ()
    if signing.rule is ClientCnRule.SERIAL:
        serials = await ctx.services.chargers.serial_numbers(ctx.charge_point_id)
    now = ctx.services.clock()
    try:
        signed = signing.sign(
            payload["csr"], identity=ctx.charge_point_id, serial_numbers=serials, now=now
        )
    except CsrRejected as exc:
        log.warning("csr_rejected", reason=str(exc))
        # SecWP A02/A03: a CSR csms will not sign may be an attempt to obtain a certificate
        # for someone else; it is kept and published like any security event (A04).
        await ctx.services.chargers.security_event(
            SecurityEventFacts(
                charge_point_id=ctx.charge_point_id,
                kind=CsmsSecurityEventType.CSR_REJECTED,
                timestamp=now,
                source=SecurityEventSource.CSMS,
                tech_info=f"csr rejected: {exc}",
            ),
            now=now,
        )
        return {"status": "Rejected"}
    # Kept before Accepted goes out: what csms signed is on record even if the charger
    # is gone before CertificateSigned reaches it.
    await ctx.services.chargers.certificate_issued(
        charge_point_id=ctx.charge_point_id,
        serial_number=signed.serial_hex,
        subject=signed.subject,
        not_before=signed.not_before,
        not_after=signed.not_after,
        pem=signed.leaf_pem,
        now=now,
    )
    log.info("csr_signed", serial_number=signed.serial_hex, subject=signed.subject)
    # SecWP A02.FR.11: Accepted; the certificate follows in CertificateSigned.req.
    signing.deliver(ctx.charge_point_id, signed.chain_pem)
    return {"status": "Accepted"}


async def on_log_status_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    await ctx.services.chargers.log_status(
        charge_point_id=ctx.charge_point_id,
        payload=payload,
        status=payload["status"],
        now=ctx.services.clock(),
    )
    return {}


async def on_signed_firmware_status_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    await ctx.services.chargers.message(
        charge_point_id=ctx.charge_point_id,
        action="SignedFirmwareStatusNotification",
        payload=payload,
        now=ctx.services.clock(),
        status=payload["status"],
    )
    return {}


SECURITY_HANDLERS: dict[str, Handler] = {
    "LogStatusNotification": on_log_status_notification,
    "SecurityEventNotification": on_security_event_notification,
    "SignCertificate": on_sign_certificate,
    "SignedFirmwareStatusNotification": on_signed_firmware_status_notification,
}
