"""What a handler is given: the services shared by every connection and its charger's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from csms.core.registration import RegistrationStatus
from csms.core.session import SessionFacts
from csms.flows.certificates import CertificateSigning
from csms.flows.chargers import ChargerFlows
from csms.flows.sessions import SessionFlows

VendorHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


@dataclass
class Services:
    """What handlers need from the rest of csms, shared by every connection."""

    chargers: ChargerFlows
    sessions: SessionFlows
    clock: Clock
    heartbeat_interval: int
    # The BootNotification interval of a Pending or Rejected charger (OCPP 1.6 §4.2).
    pending_interval: int = 300
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
    # The operator's decision as it was when the charger connected (the boot reads it again).
    registration: RegistrationStatus = RegistrationStatus.ACCEPTED
    # Open transactions of this charger, for session.updated without a database read (None:
    # a transactionId it named that is not one of its open transactions, csms.flows.sessions).
    transactions: dict[int, SessionFacts | None] = field(default_factory=dict)


# A handler takes the charger's context and the validated payload, commits what must be
# kept, and returns the CALLRESULT payload.
Handler = Callable[[ChargerContext, dict[str, Any]], Awaitable[dict[str, Any]]]
