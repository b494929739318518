"""Registration of chargers: accepted, pending an operator's decision, or rejected.

Pure decisions for OCPP 1.6 §4.2 (BootNotification) and the unknown-charger policy
(`ocpp.unknown_chargers`, docs/ocpp.md "Unknown chargers"): what a BootNotification is
answered, and what csms may send a charger that is not accepted.
"""

from __future__ import annotations

from enum import StrEnum


class RegistrationStatus(StrEnum):
    """What the operator decided about a charger (stored as `registration_status`)."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"

    @property
    def boot_status(self) -> str:
        """The BootNotification.conf status for it (OCPP 1.6 §7.40 RegistrationStatus)."""
        return self.value.capitalize()


class UnknownChargerPolicy(StrEnum):
    """`ocpp.unknown_chargers`: what becomes of an identity csms has never seen."""

    ACCEPT = "accept"  # registered on first contact, and accepted
    REJECT = "reject"  # HTTP 404 before the upgrade (OCPP-J §3.2)
    PENDING = "pending"  # registered on first contact, Pending until an operator decides

    @property
    def first_status(self) -> RegistrationStatus:
        """The registration a charger gets on first contact under this policy."""
        if self is UnknownChargerPolicy.PENDING:
            return RegistrationStatus.PENDING
        return RegistrationStatus.ACCEPTED


# OCPP 1.6 §4.2: while Pending "the Central System MAY send messages to retrieve
# information from the Charge Point or change its configuration". That includes the
# Security Whitepaper's credential and certificate provisioning (A00.FR.806, A01.FR.05)
# and a Reset to apply configuration that needs a reboot. RemoteStartTransaction and
# RemoteStopTransaction are named as not allowed; nothing else that charges, reserves or
# moves energy is sent either.
PENDING_ACTIONS = frozenset(
    {
        "GetConfiguration",
        "ChangeConfiguration",
        "TriggerMessage",
        "ExtendedTriggerMessage",
        "GetLocalListVersion",
        "SendLocalList",
        "ClearCache",
        "GetDiagnostics",
        "GetLog",
        "DataTransfer",
        "Reset",
        "CertificateSigned",
        "InstallCertificate",
        "DeleteCertificate",
        "GetInstalledCertificateIds",
    }
)


def command_refusal(status: RegistrationStatus, action: str) -> str | None:
    """Why csms must not send `action` to a charger with this registration, or None."""
    if status is RegistrationStatus.ACCEPTED:
        return None
    if status is RegistrationStatus.REJECTED:
        # OCPP 1.6 §4.2: after Rejected "the Central System SHOULD NOT initiate any" message.
        return "the charger is rejected: csms sends it nothing (OCPP 1.6 §4.2)"
    if action in PENDING_ACTIONS:
        return None
    return (
        f"the charger is pending: {action} waits until an operator accepts it "
        "(OCPP 1.6 §4.2 allows only reading and changing its configuration)"
    )


def retry_interval(configured: int, *, jitter: float) -> int:
    """The `interval` of a Pending or Rejected BootNotification.conf: the minimum wait
    before the next BootNotification (OCPP 1.6 §4.2).

    `jitter` in [0, 1) spreads chargers over the last fifth of the interval, so that a
    fleet told Pending at once does not come back at once.
    """
    return max(1, round(configured * (1 - 0.2 * jitter)))
