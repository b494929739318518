"""csms as the certificate authority of its chargers (SecWP A02/A03): sign CSRs, deliver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import structlog
from cryptography import x509

from csms.config import SecuritySettings
from csms.core.certificates import (
    SignedCertificate,
    SigningAuthority,
    check_csr,
    load_authority,
    sign_csr,
)
from csms.core.security import ClientCnRule
from csms.errors import CommandError, ConfigError, StoreError
from csms.flows.commands import Commands

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


def signing_of(security: SecuritySettings, *, commands: Commands) -> CertificateSigning | None:
    """csms as its chargers' CA when `[security] ca_key_file` is set (SecWP A02/A03).

    Raises:
        ConfigError: the CA certificate or key cannot be read or do not belong together.
    """
    if not security.ca_key_file:
        return None
    try:
        authority = load_authority(
            Path(security.ca_file).read_bytes(), Path(security.ca_key_file).read_bytes()
        )
    except OSError as exc:
        raise ConfigError(f"cannot read security.ca_file or ca_key_file: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"config keys security.ca_file/ca_key_file: {exc}") from exc
    return CertificateSigning(
        authority=authority,
        days=security.certificate_days,
        rule=ClientCnRule(security.client_cn),
        organization=security.organization,
        commands=commands,
    )
