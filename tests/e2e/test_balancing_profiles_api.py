"""The profiles API answers a failed command exactly as the command API does: both go
through `command_error_response` (csms/api/commands.py), with no mapping of their own."""

from __future__ import annotations

from typing import Any

from tests.support import RunningCsms

PROFILE: dict[str, Any] = {
    "connectorId": 0,
    "csChargingProfiles": {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
        },
    },
}


async def test_a_failed_profile_is_answered_like_the_same_command(csms: RunningCsms) -> None:
    async with csms.api() as api:
        assert (await api.put("/charge-points/PRO-OFF", json={})).status_code in (200, 201)
        for cp, status in (("PRO-NONE", 404), ("PRO-OFF", 409)):
            via_profiles = await api.post(f"/charge-points/{cp}/charging-profiles", json=PROFILE)
            via_commands = await api.post(
                f"/charge-points/{cp}/commands/SetChargingProfile", json=PROFILE
            )
            assert via_profiles.status_code == via_commands.status_code == status
            assert via_profiles.json() == via_commands.json()
