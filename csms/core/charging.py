"""Charging profiles and reservations: what a charger's accepted answer changes in our data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
    stored: list[StoredProfile], *, connector_id: int, profile: dict[str, Any]
) -> list[ProfileKey]:
    """Profiles a newly accepted one replaces.

    OCPP 1.6 §3.13.2: a profile with the same chargingProfileId, or the same stackLevel and
    chargingProfilePurpose (on the same connector), is replaced by the new one.
    """
    profile_id = profile["chargingProfileId"]
    level, purpose = profile["stackLevel"], profile["chargingProfilePurpose"]
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


def cleared_by(stored: list[StoredProfile], request: dict[str, Any]) -> list[ProfileKey]:
    """Profiles a ClearChargingProfile.req removes (OCPP 1.6 §5.5).

    With an id only that profile goes; otherwise every profile matching all the filters
    given (connectorId, chargingProfilePurpose, stackLevel); no filter clears them all.
    """
    if "id" in request:
        return [item.key for item in stored if item.key.charging_profile_id == request["id"]]
    return [
        item.key
        for item in stored
        if request.get("connectorId", item.key.connector_id) == item.key.connector_id
        and request.get("chargingProfilePurpose", item.purpose) == item.purpose
        and request.get("stackLevel", item.stack_level) == item.stack_level
    ]
