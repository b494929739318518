"""Charging profiles and reservations: what a charger's accepted answer changes in our data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReservationStatus(StrEnum):
    PENDING = "pending"  # sent, not yet answered; never published
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELED = "canceled"
    DONE = "done"


@dataclass(frozen=True)
class ProfileKey:
    connector_id: int
    charging_profile_id: int


@dataclass(frozen=True)
class StoredProfile:
    key: ProfileKey
    stack_level: int
    purpose: str


def replaced_by(
    stored: list[StoredProfile],
    *,
    connector_id: int,
    profile_id: int,
    level: int,
    purpose: str,
) -> list[ProfileKey]:
    """Profiles a newly accepted one replaces.

    OCPP 1.6 §3.13.2: a profile with the same chargingProfileId, or the same stackLevel and
    chargingProfilePurpose (on the same connector), is replaced by the new one.
    """
    return [
        item.key
        for item in stored
        if item.key.charging_profile_id == profile_id
        or (
            item.key.connector_id == connector_id
            and item.stack_level == level
            and item.purpose == purpose
        )
    ]


def cleared_by(
    stored: list[StoredProfile],
    *,
    charging_profile_id: int | None = None,
    connector_id: int | None = None,
    purpose: str | None = None,
    stack_level: int | None = None,
) -> list[ProfileKey]:
    """Profiles a ClearChargingProfile.req removes (OCPP 1.6 §5.5).

    With an id only that profile goes; otherwise every profile matching all the filters
    given (connectorId, chargingProfilePurpose, stackLevel); no filter clears them all.
    """
    if charging_profile_id is not None:
        return [item.key for item in stored if item.key.charging_profile_id == charging_profile_id]
    return [
        item.key
        for item in stored
        if connector_id in (None, item.key.connector_id)
        and purpose in (None, item.purpose)
        and stack_level in (None, item.stack_level)
    ]
