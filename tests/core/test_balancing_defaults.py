"""The safe default's shape per connector, and the backoff of its retries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from csms.core.balancing import (
    RESERVED_IDS,
    SAFE_DEFAULT_ID,
    Caps,
    retry_after_s,
    safe_default_profile,
)


def test_on_connector_0_it_covers_the_charger() -> None:
    payload = safe_default_profile(safe_da=157, caps=Caps())
    assert payload["connectorId"] == 0
    profile = payload["csChargingProfiles"]
    assert profile["chargingProfileId"] == SAFE_DEFAULT_ID
    assert (profile["chargingProfilePurpose"], profile["stackLevel"]) == ("TxDefaultProfile", 0)
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 15.7}
    ]


def test_per_connector_each_has_its_own_id_in_the_balancers_range() -> None:
    """A profile replaces any other of its id on the charger (OCPP 1.6 §3.13.2): one id
    per connector, or the second would remove the first."""
    ids = {
        safe_default_profile(safe_da=60, caps=Caps(), connector_id=k)["csChargingProfiles"][
            "chargingProfileId"
        ]
        for k in range(1, 5)
    }
    assert ids == {9101, 9102, 9103, 9104}
    assert ids <= set(RESERVED_IDS)


def test_retries_double_from_the_base_up_to_the_cap() -> None:
    assert [retry_after_s(n, base_s=10) for n in range(1, 9)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        900,
    ]
    assert retry_after_s(10_000, base_s=10) == 900


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.01, max_value=100))
def test_retries_never_shrink(attempt: int, base: float) -> None:
    assert retry_after_s(attempt + 1, base_s=base) >= retry_after_s(attempt, base_s=base)
