"""Registration decisions: what a charger's boot is answered and what csms may send it."""

from __future__ import annotations

import pytest

from csms.core.registration import (
    PENDING_ACTIONS,
    RegistrationStatus,
    UnknownChargerPolicy,
    command_refusal,
    retry_interval,
)

ACCEPTED, PENDING, REJECTED = (
    RegistrationStatus.ACCEPTED,
    RegistrationStatus.PENDING,
    RegistrationStatus.REJECTED,
)


@pytest.mark.parametrize(
    ("status", "action", "allowed"),
    [
        (ACCEPTED, "RemoteStartTransaction", True),
        (PENDING, "GetConfiguration", True),
        (PENDING, "ChangeConfiguration", True),  # the AuthorizationKey too (A00.FR.806)
        (PENDING, "TriggerMessage", True),
        (PENDING, "CertificateSigned", True),
        (PENDING, "RemoteStartTransaction", False),  # OCPP 1.6 §4.2 names it
        (PENDING, "RemoteStopTransaction", False),
        (PENDING, "SetChargingProfile", False),
        (PENDING, "ReserveNow", False),
        (REJECTED, "GetConfiguration", False),  # csms initiates nothing
    ],
)
def test_what_csms_may_send(status: RegistrationStatus, action: str, allowed: bool) -> None:
    """Pending: configuration and provisioning only; Rejected: nothing."""
    assert (command_refusal(status, action) is None) is allowed


def test_remote_start_and_stop_are_never_pending_actions() -> None:
    """The two actions OCPP 1.6 §4.2 forbids while Pending are not in the allowed set."""
    assert {"RemoteStartTransaction", "RemoteStopTransaction"}.isdisjoint(PENDING_ACTIONS)


def test_boot_statuses_and_first_contact() -> None:
    """The BootNotification.conf spelling, and what a new charger gets under each policy."""
    assert [s.boot_status for s in RegistrationStatus] == ["Accepted", "Pending", "Rejected"]
    assert UnknownChargerPolicy.ACCEPT.first_status is ACCEPTED
    assert UnknownChargerPolicy.PENDING.first_status is PENDING


@pytest.mark.parametrize(
    ("configured", "jitter", "interval"),
    [(300, 0.0, 300), (300, 0.5, 270), (300, 0.999, 240), (1, 0.9, 1)],
)
def test_retry_interval_is_spread_over_the_last_fifth(
    configured: int, jitter: float, interval: int
) -> None:
    """A fleet told Pending at once comes back over the last fifth of the interval, never 0."""
    assert retry_interval(configured, jitter=jitter) == interval
