"""The platform's notification names: network status, session status and reason,
reservation status, as events and webhooks carry them (docs/events.md, "Naming")."""

from __future__ import annotations

from enum import StrEnum


class NetworkStatus(StrEnum):
    """`chargepoint.network_status` `status`."""

    NEVER_CONNECTED = "never_connected"  # registered through the API, not connected yet
    AVAILABLE = "available"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
    LONG_TERM_UNAVAILABLE = "long_term_unavailable"


class SessionStatus(StrEnum):
    """`session.*` `status`. csms's OCPP 1.6 flows give active, finished and failed;
    pending and expired are for sessions started ahead of the charger (remote start,
    prepaid balance), which send them when they exist."""

    PENDING = "pending"
    ACTIVE = "active"
    FINISHED = "finished"
    FAILED = "failed"
    EXPIRED = "expired"


class ReservationStatus(StrEnum):
    """`reservation.status` `status`."""

    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELED = "canceled"
    DONE = "done"


# The Reason of StopTransaction.req (OCPP 1.6 §6.51), as snake_case session reasons; and
# csms's own "Forced" (the operator's force stop). A transaction ended by a newer start on
# its connector is stored with "Other" and so reads "other".
_STOP_REASONS = {
    "DeAuthorized": "deauthorized",
    "EmergencyStop": "emergency_stop",
    "EVDisconnected": "ev_disconnected",
    "HardReset": "hard_reset",
    "Local": "local",
    "Other": "other",
    "PowerLoss": "power_loss",
    "Reboot": "reboot",
    "Remote": "remote",
    "SoftReset": "soft_reset",
    "UnlockCommand": "unlock_command",
    "Forced": "forced",
}
# Reasons other parts of the platform use (tariffs, schedules); listed for the docs.
PLATFORM_REASONS = ("timeout", "schedule_completed", "balance_exceeded", "not_authorized")


def stop_reason(ocpp_reason: str | None) -> str:
    """The session reason of a stop. OCPP-J errata §2.6: an absent reason means Local."""
    if ocpp_reason is None:
        return "local"
    return _STOP_REASONS.get(ocpp_reason, "other")


def session_status(*, stopped: bool, authorized: bool) -> tuple[SessionStatus, str | None]:
    """A session's status and reason before its stop reason is known.

    A transaction whose idTag was not accepted at StartTransaction has failed (OCPP 1.6
    §4.8: the charger should stop it); others are active until they stop, then finished.
    """
    if not authorized:
        return SessionStatus.FAILED, "not_authorized"
    return (SessionStatus.FINISHED if stopped else SessionStatus.ACTIVE), None
