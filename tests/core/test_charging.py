"""Charging profiles: what SetChargingProfile replaces and ClearChargingProfile removes."""

from __future__ import annotations

from typing import Any

import pytest

from csms.core.charging import ProfileKey, StoredProfile, cleared_by, replaced_by

STORED = [
    StoredProfile(ProfileKey(1, 10), stack_level=0, purpose="TxDefaultProfile"),
    StoredProfile(ProfileKey(1, 11), stack_level=1, purpose="TxDefaultProfile"),
    StoredProfile(ProfileKey(2, 12), stack_level=0, purpose="TxDefaultProfile"),
    StoredProfile(ProfileKey(0, 13), stack_level=0, purpose="ChargePointMaxProfile"),
]


@pytest.mark.parametrize(
    ("connector", "profile", "replaced"),
    [
        (
            1,
            {"chargingProfileId": 10, "stackLevel": 5, "chargingProfilePurpose": "TxProfile"},
            [10],
        ),
        (
            1,
            {
                "chargingProfileId": 99,
                "stackLevel": 1,
                "chargingProfilePurpose": "TxDefaultProfile",
            },
            [11],
        ),
        (
            2,
            {
                "chargingProfileId": 99,
                "stackLevel": 1,
                "chargingProfilePurpose": "TxDefaultProfile",
            },
            [],
        ),
        (3, {"chargingProfileId": 98, "stackLevel": 0, "chargingProfilePurpose": "TxProfile"}, []),
    ],
)
def test_set_replaces_same_id_or_same_level_and_purpose(
    connector: int, profile: dict[str, Any], replaced: list[int]
) -> None:
    """§3.13.2: same id anywhere, or same stackLevel+purpose on the connector, is replaced."""
    keys = replaced_by(
        STORED,
        connector_id=connector,
        profile_id=profile["chargingProfileId"],
        level=profile["stackLevel"],
        purpose=profile["chargingProfilePurpose"],
    )
    assert [key.charging_profile_id for key in keys] == replaced


@pytest.mark.parametrize(
    ("request_", "cleared"),
    [
        ({"id": 12}, [12]),
        ({"id": 12, "connectorId": 1}, [12]),
        ({"connectorId": 1}, [10, 11]),
        ({"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0}, [10, 12]),
        ({"chargingProfilePurpose": "ChargePointMaxProfile"}, [13]),
        ({}, [10, 11, 12, 13]),
    ],
)
def test_clear_matches_id_or_every_given_filter(
    request_: dict[str, Any], cleared: list[int]
) -> None:
    """§5.5: an id clears that profile; otherwise all filters must match."""
    keys = cleared_by(
        STORED,
        charging_profile_id=request_.get("id"),
        connector_id=request_.get("connectorId"),
        purpose=request_.get("chargingProfilePurpose"),
        stack_level=request_.get("stackLevel"),
    )
    assert [key.charging_profile_id for key in keys] == cleared
