"""Charging profiles: validation, stacking, purposes, recurrence and composite schedules."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.v16.enums import ChargingProfileStatus as Status
from ocpp.v16.enums import ChargingRateUnitType as Unit

from simulators.clock import iso
from simulators.smart import Electrical, ProfileStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
W_PER_A = 230.0 * 3  # three phases at 230 V


def profile(
    profile_id: int,
    purpose: str = "TxDefaultProfile",
    stack: int = 0,
    periods: list[tuple[int, float]] | None = None,
    *,
    unit: str = "A",
    kind: str = "Absolute",
    start: float | None = T0,
    duration: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A csChargingProfiles object."""
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": limit} for s, limit in (periods or [(0, 16.0)])
        ],
    }
    if start is not None:
        schedule["startSchedule"] = iso(start)
    if duration is not None:
        schedule["duration"] = duration
    body: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
    }
    body.update(extra)
    return body


def store() -> ProfileStore:
    """Two connectors of 22 kW (32 A three-phase)."""
    return ProfileStore(2, Electrical(230.0, 3, 22_080.0))


def limit(s: ProfileStore, connector: int, t: float, tx_start: float | None = None) -> float:
    """The limit in amps at ``t``."""
    watts, _ = s.limit_w(connector, t, tx_start, tx_start is not None)
    return watts / W_PER_A


@pytest.mark.parametrize(
    ("connector", "body", "active", "status"),
    [
        (0, profile(1, "ChargePointMaxProfile"), None, Status.accepted),
        (1, profile(1, "ChargePointMaxProfile"), None, Status.rejected),
        (0, profile(1, "TxProfile"), None, Status.rejected),
        (1, profile(1, "TxProfile"), None, Status.rejected),
        (1, profile(1, "TxProfile"), 42, Status.accepted),
        (1, profile(1, "TxProfile", transactionId=41), 42, Status.rejected),
        (1, profile(1, "TxProfile", transactionId=42), 42, Status.accepted),
        (3, profile(1), None, Status.rejected),
        (1, profile(1, stack=11), None, Status.rejected),
        (1, profile(1, periods=[(i * 60, 10.0) for i in range(25)]), None, Status.rejected),
        (1, profile(1, kind="Recurring"), None, Status.rejected),
        (1, profile(1, periods=[(0, 10.0), (0, 8.0)]), None, Status.rejected),
        (1, profile(1, kind="Recurring", recurrencyKind="Daily"), None, Status.accepted),
    ],
)
def test_install_rules(
    connector: int, body: dict[str, Any], active: int | None, status: Status
) -> None:
    """SetChargingProfile is accepted or rejected per purpose, connector, transaction and limits."""
    assert store().install(connector, body, T0, active) is status


def test_no_profile_means_hardware_limit() -> None:
    """Without profiles a connector may draw its hardware maximum; the charger all connectors."""
    s = store()
    assert s.limit_w(1, T0, None, False)[0] == 22_080.0
    assert s.limit_w(0, T0, None, False)[0] == 44_160.0


def test_higher_stack_level_wins_until_its_duration_ends() -> None:
    """A higher stack level prevails while valid, then the lower one applies again."""
    s = store()
    s.install(0, profile(1, stack=0, periods=[(0, 16.0)]), T0)
    s.install(0, profile(2, stack=1, periods=[(0, 10.0)], duration=3600), T0)
    assert limit(s, 1, T0 + 10) == pytest.approx(10.0)
    assert limit(s, 1, T0 + 3599) == pytest.approx(10.0)
    assert limit(s, 1, T0 + 3600) == pytest.approx(16.0)


def test_purposes_combine() -> None:
    """Connector TxDefault beats connector-0 TxDefault, TxProfile beats both, CPMax caps all."""
    s = store()
    s.install(0, profile(1, periods=[(0, 20.0)]), T0)
    assert limit(s, 1, T0) == pytest.approx(20.0)
    s.install(1, profile(2, periods=[(0, 12.0)]), T0)
    assert limit(s, 1, T0) == pytest.approx(12.0)
    assert limit(s, 2, T0) == pytest.approx(20.0)
    s.install(1, profile(3, "TxProfile", periods=[(0, 25.0)]), T0, 7)
    assert limit(s, 1, T0, tx_start=T0) == pytest.approx(25.0)
    s.install(0, profile(4, "ChargePointMaxProfile", periods=[(0, 18.0)]), T0)
    assert limit(s, 1, T0, tx_start=T0) == pytest.approx(18.0)
    s.end_transaction(1)
    assert limit(s, 1, T0) == pytest.approx(12.0)


def test_same_id_or_same_slot_replaces() -> None:
    """A profile with the same id, or the same connector/purpose/stack level, replaces the old."""
    s = store()
    s.install(1, profile(1, stack=2, periods=[(0, 10.0)]), T0)
    s.install(1, profile(1, stack=3, periods=[(0, 11.0)]), T0)
    s.install(1, profile(9, stack=3, periods=[(0, 12.0)]), T0)
    assert list(s.profiles) == [9]
    assert limit(s, 1, T0) == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("criteria", "removed", "left"),
    [
        ({"profile_id": 2}, True, [1, 3]),
        ({"profile_id": 99}, False, [1, 2, 3]),
        ({"connector_id": 1}, True, [1]),
        ({"purpose": "ChargePointMaxProfile"}, True, [2, 3]),
        ({"stack_level": 5}, True, [1, 2]),
        ({}, True, []),
    ],
)
def test_clear(criteria: dict[str, Any], removed: bool, left: list[int]) -> None:
    """ClearChargingProfile removes by id, or by the other fields as filters."""
    s = store()
    s.install(0, profile(1, "ChargePointMaxProfile"), T0)
    s.install(1, profile(2, stack=1), T0)
    s.install(1, profile(3, stack=5), T0)
    assert s.clear(**criteria) is removed
    assert sorted(s.profiles) == left


def test_relative_profile_follows_transaction_start() -> None:
    """A Relative profile's periods count from the start of the transaction."""
    s = store()
    s.install(1, profile(1, kind="Relative", start=None, periods=[(0, 6.0), (1800, 14.0)]), T0)
    tx_start = T0 + 7200
    assert limit(s, 1, tx_start + 100, tx_start) == pytest.approx(6.0)
    assert limit(s, 1, tx_start + 1800, tx_start) == pytest.approx(14.0)


def test_daily_recurring_profile_repeats() -> None:
    """A Daily profile applies the same periods every day."""
    s = store()
    body = profile(
        1, kind="Recurring", recurrencyKind="Daily", periods=[(0, 8.0), (6 * 3600, 32.0)]
    )
    s.install(1, body, T0)
    for day in range(3):
        assert limit(s, 1, T0 + day * 86400 + 3600) == pytest.approx(8.0)
        assert limit(s, 1, T0 + day * 86400 + 7 * 3600) == pytest.approx(32.0)


def test_valid_from_and_to() -> None:
    """A profile only applies between validFrom and validTo."""
    s = store()
    s.install(1, profile(1, periods=[(0, 6.0)], validFrom=iso(T0 + 100), validTo=iso(T0 + 200)), T0)
    assert limit(s, 1, T0 + 50) == pytest.approx(32.0)
    assert limit(s, 1, T0 + 150) == pytest.approx(6.0)
    assert limit(s, 1, T0 + 250) == pytest.approx(32.0)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (Unit.amps, [(0, 10.0), (600, 16.0), (1200, 32.0)]),
        (Unit.watts, [(0, 6900.0), (600, 11040.0), (1200, 22080.0)]),
    ],
)
def test_composite_schedule(unit: Unit, expected: list[tuple[int, float]]) -> None:
    """The composite schedule walks every change point and merges equal periods."""
    s = store()
    s.install(0, profile(1, periods=[(0, 16.0)], duration=1200), T0)
    s.install(0, profile(2, stack=1, periods=[(0, 10.0), (300, 10.0)], duration=600), T0)
    assert s.composite(1, T0, 3600, unit, None, False) == expected


def test_composite_with_watts_profile_in_amps() -> None:
    """Watt limits convert to amps with the charger's voltage and phases, in 0.1 steps."""
    s = store()
    s.install(0, profile(1, unit="W", periods=[(0, 7400.0)]), T0)
    assert s.composite(1, T0, 600, Unit.amps, None, False) == [(0, 10.7)]


def test_composite_starts_mid_schedule() -> None:
    """Asked later than the schedule start, offsets count from the request time."""
    s = store()
    s.install(0, profile(1, periods=[(0, 8.0), (3600, 12.0)]), T0)
    assert s.composite(1, T0 + 1800, 3600, Unit.amps, None, False) == [(0, 8.0), (1800, 12.0)]
