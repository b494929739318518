"""The composite schedule csms computes from the profiles a charger holds (OCPP 1.6 §3.13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.schedule import (
    Electrical,
    ProfileError,
    TxContext,
    Unit,
    composite_schedule,
    limit_at,
    profile_from_ocpp,
)

T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
THREE = Electrical(230.0, 3)


def raw(
    pid: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    level: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = T0,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods],
    }
    if start is not None:
        schedule["startSchedule"] = start.isoformat()
    schedule.update(extra.pop("schedule", {}))
    return {
        "chargingProfileId": pid,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


def periods(profiles: list[Any], *, at: datetime = T0, duration: int = 3600, **kw: Any) -> list:
    result = composite_schedule(
        profiles,
        connector_id=kw.pop("connector_id", 1),
        start=at,
        duration=duration,
        unit=kw.pop("unit", Unit.AMPS),
        tx=kw.pop("tx", TxContext()),
        electrical=kw.pop("electrical", THREE),
        **kw,
    )
    return list(result.periods)


def test_no_profile_is_unlimited() -> None:
    """Without profiles nothing limits the connector (or only its hardware)."""
    assert periods([]) == [(0, None)]
    assert periods([], hardware_w=32 * 230 * 3) == [(0, 32.0)]


def test_stack_levels_and_periods() -> None:
    """The highest stack level in force wins, period by period."""
    low = profile_from_ocpp(1, raw(1, "TxDefaultProfile", [(0, 16), (1800, 10)]))
    high = profile_from_ocpp(
        1, raw(2, "TxDefaultProfile", [(0, 8)], level=1, schedule={"duration": 600})
    )
    assert periods([low, high]) == [(0, 8.0), (600, 16.0), (1800, 10.0)]


def test_charge_point_max_caps_the_tx_chain() -> None:
    """ChargePointMaxProfile is the minimum over Tx/TxDefault; TxProfile beats TxDefault."""
    cp_max = profile_from_ocpp(0, raw(1, "ChargePointMaxProfile", [(0, 20), (600, 12)]))
    default = profile_from_ocpp(0, raw(2, "TxDefaultProfile", [(0, 32)]))
    tx = profile_from_ocpp(1, raw(3, "TxProfile", [(0, 16)], transactionId=7))
    profiles = [cp_max, default, tx]
    assert periods(profiles) == [(0, 20.0), (600, 12.0)]
    running = TxContext(transaction_id=7, started_at=T0)
    assert periods(profiles, tx=running) == [(0, 16.0), (600, 12.0)]
    other = TxContext(transaction_id=8, started_at=T0)
    assert periods(profiles, tx=other) == [(0, 20.0), (600, 12.0)]


def test_connector_default_overrides_connector_zero() -> None:
    """A TxDefaultProfile on the connector overrides the one on connector 0 (§3.13.2)."""
    everywhere = profile_from_ocpp(0, raw(1, "TxDefaultProfile", [(0, 10)], level=5))
    here = profile_from_ocpp(1, raw(2, "TxDefaultProfile", [(0, 25)]))
    assert periods([everywhere, here]) == [(0, 25.0)]
    assert periods([everywhere, here], connector_id=2) == [(0, 10.0)]


def test_validity_window() -> None:
    """validFrom/validTo bound a profile."""
    window = raw(
        1,
        "TxDefaultProfile",
        [(0, 6)],
        validFrom=(T0 + timedelta(minutes=10)).isoformat(),
        validTo=(T0 + timedelta(minutes=20)).isoformat(),
    )
    assert periods([profile_from_ocpp(1, window)]) == [(0, None), (600, 6.0), (1200, None)]


def test_relative_starts_with_the_transaction() -> None:
    """A Relative schedule counts from the transaction start."""
    relative = profile_from_ocpp(
        1, raw(1, "TxDefaultProfile", [(0, 6), (900, 16)], kind="Relative", start=None)
    )
    tx = TxContext(transaction_id=1, started_at=T0 - timedelta(minutes=10))
    assert periods([relative], tx=tx) == [(0, 6.0), (300, 16.0)]


def test_watts_and_amps_convert_with_phases_and_voltage() -> None:
    """W = A x V x phases: 11040 W on three phases at 230 V is 16 A; numberPhases counts."""
    watts = profile_from_ocpp(1, raw(1, "TxDefaultProfile", [(0, 11040)], unit="W"))
    assert periods([watts]) == [(0, 16.0)]
    assert periods([watts], unit=Unit.WATTS) == [(0, 11040.0)]
    single = Electrical(230.0, 1)
    assert periods([watts], electrical=single) == [(0, 48.0)]
    one_phase = raw(2, "TxDefaultProfile", [(0, 16)])
    one_phase["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = 1
    assert periods([profile_from_ocpp(1, one_phase)], unit=Unit.WATTS) == [(0, 3680.0)]


@pytest.mark.parametrize(
    "data",
    [
        raw(1, "TxDefaultProfile", [(60, 6)]),
        raw(1, "TxDefaultProfile", [(0, 6), (0, 7)]),
        raw(1, "TxDefaultProfile", [(0, 6)], kind="Recurring"),
        raw(1, "TxProfile", [(0, 6)]) | {"_connector": 0},
    ],
    ids=["first period not at 0", "duplicate start", "recurring without kind", "tx on 0"],
)
def test_unusable_profiles(data: dict[str, Any]) -> None:
    """What the schema lets through but cannot be a profile is refused."""
    connector = data.pop("_connector", 1)
    with pytest.raises(ProfileError):
        profile_from_ocpp(connector, data)


# -- recurring schedules: independent of the time of day the question is asked --


@settings(max_examples=200, deadline=None)
@given(
    anchor_minutes=st.integers(min_value=0, max_value=7 * 24 * 60),
    asked_seconds=st.integers(min_value=0, max_value=30 * 86400),
    weekly=st.booleans(),
)
def test_recurring_is_periodic(anchor_minutes: int, asked_seconds: int, weekly: bool) -> None:
    """A Recurring profile gives the same limit one cycle later, wherever the anchor lies
    and at whatever time of day it is asked."""
    anchor = T0 + timedelta(minutes=anchor_minutes)
    profile = profile_from_ocpp(
        1,
        raw(
            1,
            "TxDefaultProfile",
            [(0, 6), (3600, 16), (7200, 10)],
            kind="Recurring",
            recurrencyKind="Weekly" if weekly else "Daily",
            start=anchor,
        ),
    )
    cycle = timedelta(days=7 if weekly else 1)
    at = anchor + timedelta(seconds=asked_seconds)

    def limit(moment: datetime) -> float | None:
        value, _ = limit_at([profile], connector_id=1, at=moment, tx=TxContext(), electrical=THREE)
        return value

    assert limit(at) == limit(at + cycle)
    offset = asked_seconds % int(cycle.total_seconds())
    expected = 6 if offset < 3600 else 16 if offset < 7200 else 10
    assert limit(at) == pytest.approx(expected * 230 * 3)


@settings(max_examples=100, deadline=None)
@given(
    limits=st.lists(st.integers(min_value=0, max_value=640), min_size=1, max_size=5),
    shift=st.integers(min_value=0, max_value=86400),
)
def test_composite_is_never_above_any_profile(limits: list[int], shift: int) -> None:
    """The composite never exceeds the ChargePointMax or the TxDefault in force, at any
    start time."""
    start = T0 + timedelta(seconds=shift)
    steps = [(i * 600, value / 10) for i, value in enumerate(limits)]
    cp_max = profile_from_ocpp(0, raw(1, "ChargePointMaxProfile", steps))
    default = profile_from_ocpp(0, raw(2, "TxDefaultProfile", [(0, 20.0), (1500, 6.0)]))
    result = periods([cp_max, default], at=start, duration=7200)
    for offset, value in result:
        moment = start + timedelta(seconds=offset)
        for profile in ([cp_max], [default]):
            bound, _ = limit_at(
                profile, connector_id=1, at=moment, tx=TxContext(), electrical=THREE
            )
            assert bound is None or value is None or value * 690 <= bound + 1e-6
