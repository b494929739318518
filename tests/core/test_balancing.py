"""The balancer's decisions: hysteresis, leases, the ladder, the profiles it builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.core.allocator import Grant, Reason
from csms.core.balancing import (
    Applied,
    BalancerPolicy,
    Caps,
    CapsProblem,
    ChangeKind,
    Strategy,
    check_against_caps,
    collides_with_balancer,
    next_rung,
    plan,
    safe_default_profile,
    safe_share_da,
    tx_profile,
)

NOW = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
POLICY = BalancerPolicy()
KEY = ("CP-1", 1)


def grant(value: int) -> dict[tuple[str, int], Grant]:
    return {KEY: Grant(value, Reason.CIRCUIT, "site", 0)}


def applied(value: int, *, ago: float, lease_left: float = 1200) -> dict:
    return {KEY: Applied(value, NOW - timedelta(seconds=ago), NOW + timedelta(seconds=lease_left))}


@pytest.mark.parametrize(
    ("target", "current", "ago", "lease_left", "kind"),
    [
        (100, None, 0, 1200, ChangeKind.INCREASE),  # a new session: sent at once
        (80, 160, 0, 1200, ChangeKind.DECREASE),  # decreases never wait
        (200, 160, 60, 1200, ChangeKind.INCREASE),  # steady for 60 s, 4 A more
        (200, 160, 10, 1200, None),  # too soon after the last change (30 s hold)
        (165, 160, 60, 1200, None),  # less than 1 A more
        (160, 160, 60, 1200, None),  # equal: never re-sent
        (160, 160, 60, 300, ChangeKind.RENEW),  # ... unless its lease runs out
        (100, 0, 45, 1200, None),  # resuming from 0 waits 60 s
        (100, 0, 61, 1200, ChangeKind.INCREASE),
    ],
)
def test_plan(
    target: int, current: int | None, ago: float, lease_left: float, kind: ChangeKind | None
) -> None:
    """Decreases go at once; increases wait for 1 A and 30 s (60 s from 0); equal limits are
    not re-sent but leases are renewed."""
    now_applied = {} if current is None else applied(current, ago=ago, lease_left=lease_left)
    result = plan(grant(target), now_applied, now=NOW, policy=POLICY, controlled=[KEY])
    changes = [*result.decreases, *result.increases]
    assert [c.kind for c in changes] == ([] if kind is None else [kind])


def test_ladder() -> None:
    """TxProfile -> TxProfile at 0 -> TxDefault on the connector -> ChargePointMax (one
    connector only) -> uncontrollable."""
    rungs, rung = [], Strategy.TX_PROFILE
    while rung is not Strategy.UNCONTROLLABLE:
        rung = next_rung(rung, connectors=1)
        rungs.append(rung)
    assert rungs == [
        Strategy.TX_PROFILE_SL0,
        Strategy.TX_DEFAULT_CONNECTOR,
        Strategy.CP_MAX,
        Strategy.UNCONTROLLABLE,
    ]
    assert next_rung(Strategy.TX_DEFAULT_CONNECTOR, connectors=2) is Strategy.UNCONTROLLABLE


def test_tx_profile_carries_its_lease() -> None:
    """Two periods: the limit now, the safe share from the lease's end; startSchedule 60 s
    back; the balancer's id and stack level."""
    payload, lease_end = tx_profile(
        connector_id=2,
        transaction_id=7,
        limit_da=163,
        safe_da=80,
        now=NOW,
        caps=Caps(),
        policy=POLICY,
        strategy=Strategy.TX_PROFILE,
    )
    profile = payload["csChargingProfiles"]
    assert payload["connectorId"] == 2
    assert (profile["chargingProfileId"], profile["stackLevel"]) == (9002, 1)
    assert profile["transactionId"] == 7
    schedule = profile["chargingSchedule"]
    assert schedule["startSchedule"] == "2026-03-02T06:59:00.000Z"
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.3},
        {"startPeriod": 1860, "limit": 8.0},
    ]
    assert lease_end == NOW + timedelta(seconds=1800)


def test_tx_profile_for_one_period_watts_and_whole_amps() -> None:
    """One period only: validTo is the lease; watts when amps are not allowed (floored);
    whole amps rounded down."""
    one, _ = tx_profile(
        connector_id=1,
        transaction_id=1,
        limit_da=163,
        safe_da=80,
        now=NOW,
        caps=Caps(max_periods=1),
        policy=POLICY,
        strategy=Strategy.TX_PROFILE,
    )
    assert len(one["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]) == 1
    assert one["csChargingProfiles"]["validTo"] == "2026-03-02T07:30:00.000Z"
    watts, _ = tx_profile(
        connector_id=1,
        transaction_id=1,
        limit_da=163,
        safe_da=80,
        now=NOW,
        caps=Caps(amps=False),
        policy=POLICY,
        strategy=Strategy.TX_PROFILE,
    )
    schedule = watts["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["chargingSchedulePeriod"][0]["limit"] == 11247.0  # 16.3 x 230 x 3
    whole, _ = tx_profile(
        connector_id=1,
        transaction_id=1,
        limit_da=163,
        safe_da=80,
        now=NOW,
        caps=Caps(integer_amps=True),
        policy=POLICY,
        strategy=Strategy.CP_MAX,
    )
    assert whole["connectorId"] == 0
    profile = whole["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.0


def test_safe_share_and_default() -> None:
    """The headroom split evenly, capped at the maximum, 0 below the minimum; sent as a
    Relative TxDefaultProfile on connector 0 at stack level 0."""
    assert safe_share_da(headroom_da=315, connectors=3, min_da=60, max_da=320) == 105
    assert safe_share_da(headroom_da=315, connectors=10, min_da=60, max_da=320) == 0
    assert safe_share_da(headroom_da=315, connectors=1, min_da=60, max_da=160) == 160
    default = safe_default_profile(safe_da=105, caps=Caps())
    assert default["connectorId"] == 0
    body = default["csChargingProfiles"]
    assert (body["chargingProfileId"], body["stackLevel"]) == (9100, 0)
    assert body["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 10.5}]


def test_caps_from_configuration_and_checks() -> None:
    """The charger's keys become limits, and a profile beyond one is refused by name."""
    caps = Caps.from_configuration(
        {
            "ChargeProfileMaxStackLevel": "3",
            "ChargingScheduleMaxPeriods": "1",
            "ChargingScheduleAllowedChargingRateUnit": "Current",
        }
    )
    assert caps == Caps(max_stack_level=3, max_periods=1, amps=True, watts=False)
    profile = {
        "stackLevel": 2,
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1000}],
        },
    }
    with pytest.raises(CapsProblem, match="ChargingScheduleAllowedChargingRateUnit"):
        check_against_caps(profile, caps)
    with pytest.raises(CapsProblem, match="ChargeProfileMaxStackLevel 3"):
        check_against_caps({**profile, "stackLevel": 4}, caps)


def test_operator_profiles_that_would_replace_the_balancers() -> None:
    """The balancer's ids and its (purpose, stackLevel) pairs are refused to operators."""
    base = {"chargingProfileId": 1, "chargingProfilePurpose": "TxProfile", "stackLevel": 2}
    assert collides_with_balancer(base) is None
    assert collides_with_balancer({**base, "chargingProfileId": 9001}) is not None
    assert collides_with_balancer({**base, "stackLevel": 1}) is not None
    default = {**base, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0}
    assert collides_with_balancer(default) is not None
