"""Handlers for the charger -> CSMS messages of the OCPP 1.6 Security Whitepaper (edition 3).

SecurityEventNotification (A04), SignCertificate (A02/A03), LogStatusNotification (N01)
and SignedFirmwareStatusNotification (L01), registered in `handlers.HANDLERS`. Like every
handler, these commit before they answer and never call their own charger: the signed
certificate goes back in CertificateSigned.req from a task of `CertificateSigning`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from cryptography import x509

from csms.core.certificates import (
    CsrRejected,
    SignedCertificate,
    SigningAuthority,
    check_csr,
    sign_csr,
)
from csms.core.clock import parse_timestamp
from csms.core.security import ClientCnRule
from csms.core.security_events import SecurityEventSource, is_critical
from csms.errors import CommandError, StoreError
from csms.events import build
from csms.store import repo, security

if TYPE_CHECKING:
    from csms.ocpp16.commands import Commands
    from csms.ocpp16.handlers import ChargerContext, Handler

log = structlog.get_logger("csms.ocpp")


class CertificateSigning:
    """csms as the CA of its chargers (SecWP A02/A03, A00.FR.601): checks and signs CSRs.

    On only when `[security] ca_key_file` is set. Certificates go to the charger through
    `Commands`, so CertificateSigned is queued, recorded and published like any command.
    """

    def __init__(
        self,
        *,
        authority: SigningAuthority,
        days: int,
        rule: ClientCnRule,
        organization: str,
        commands: Commands,
    ) -> None:
        self.authority = authority
        self.days = days
        self.rule = rule
        self.organization = organization
        self._commands = commands
        self._tasks: set[asyncio.Task[None]] = set()

    def sign(
        self, csr_pem: str, *, identity: str, serial_numbers: Sequence[str], now: datetime
    ) -> SignedCertificate:
        """The certificate for a charger's CSR.

        Raises:
            CsrRejected: the CSR is not one csms signs for this charger.
        """
        csr = check_csr(
            csr_pem,
            identity=identity,
            serial_numbers=serial_numbers,
            rule=self.rule,
            organization=self.organization,
        )
        return sign_csr(
            csr,
            authority=self.authority,
            now=now,
            days=self.days,
            serial_number=x509.random_serial_number(),
        )

    def deliver(self, charge_point_id: str, chain_pem: str) -> None:
        """Send CertificateSigned.req from a task of its own (never from the handler)."""
        task = asyncio.create_task(
            self._deliver(charge_point_id, chain_pem), name=f"certificate-signed-{charge_point_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, charge_point_id: str, chain_pem: str) -> None:
        try:
            result = await self._commands.run(
                charge_point_id,
                "CertificateSigned",
                {"certificateChain": chain_pem},
                requested_by="csms",
            )
        except (CommandError, StoreError) as exc:
            # SecWP A02 error handling: the charger does not retry; an operator re-runs
            # A02 (ExtendedTriggerMessage SignChargePointCertificate) once this is fixed.
            log.warning(
                "certificate_not_delivered", charge_point_id=charge_point_id, error=str(exc)
            )
            return
        status = result.response.get("status")
        if status != "Accepted":
            # SecWP A02.FR.07: the charger discards it and reports InvalidChargePointCertificate.
            log.warning("certificate_refused", charge_point_id=charge_point_id, status=status)
            return
        log.info("certificate_installed", charge_point_id=charge_point_id)

    async def wait_idle(self) -> None:
        """Wait until every CertificateSigned in flight has been answered or given up."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def on_security_event_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    now = ctx.services.clock()
    when = parse_timestamp(payload["timestamp"], received=now)
    event = build.security_event(
        ctx.charge_point_id,
        kind=payload["type"],
        at=when.value,
        source=SecurityEventSource.CHARGER,
        tech_info=payload.get("techInfo"),
    )
    # SecWP A04.FR.03: confirmed only once stored, so a queued event is never lost (A04.FR.02).
    await ctx.services.writer.submit_bulk(security.security_event(event, now=now))
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
        serials = await _serial_numbers(ctx)
    now = ctx.services.clock()
    try:
        signed = signing.sign(
            payload["csr"], identity=ctx.charge_point_id, serial_numbers=serials, now=now
        )
    except CsrRejected as exc:
        log.warning("csr_rejected", reason=str(exc))
        return {"status": "Rejected"}
    # Kept before Accepted goes out: what csms signed is on record even if the charger
    # is gone before CertificateSigned reaches it.
    await ctx.services.writer.submit_bulk(
        security.issued_certificate(
            charge_point_id=ctx.charge_point_id,
            serial_number=signed.serial_hex,
            subject=signed.subject,
            not_before=signed.not_before,
            not_after=signed.not_after,
            pem=signed.leaf_pem,
            now=now,
        )
    )
    log.info("csr_signed", serial_number=signed.serial_hex, subject=signed.subject)
    # SecWP A02.FR.11: Accepted; the certificate follows in CertificateSigned.req.
    signing.deliver(ctx.charge_point_id, signed.chain_pem)
    return {"status": "Accepted"}


async def _serial_numbers(ctx: ChargerContext) -> tuple[str, ...]:
    """The serial numbers the charger gave in its BootNotification (SecWP A00.FR.405)."""
    async with ctx.services.database.sessions() as session:
        row = await repo.get_charge_point(session, ctx.charge_point_id)
    if row is None:
        return ()
    return tuple(serial for serial in (row.charge_box_serial_number, row.serial_number) if serial)


async def on_log_status_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    await ctx.services.writer.submit_bulk(
        security.log_status(
            charge_point_id=ctx.charge_point_id, payload=payload, now=ctx.services.clock()
        )
    )
    return {}


async def on_signed_firmware_status_notification(
    ctx: ChargerContext, payload: dict[str, Any]
) -> dict[str, Any]:
    # The same firmware_status as FirmwareStatusNotification: a charger uses one or the
    # other (SecWP L01.FR.20: a signed-firmware charger refuses UpdateFirmware).
    await ctx.services.writer.submit_bulk(
        repo.charger_message(
            charge_point_id=ctx.charge_point_id,
            action="SignedFirmwareStatusNotification",
            payload=payload,
            now=ctx.services.clock(),
            status_column="firmware_status",
        )
    )
    return {}


SECURITY_HANDLERS: dict[str, Handler] = {
    "LogStatusNotification": on_log_status_notification,
    "SecurityEventNotification": on_security_event_notification,
    "SignCertificate": on_sign_certificate,
    "SignedFirmwareStatusNotification": on_signed_firmware_status_notification,
}
