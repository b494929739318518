"""The fleet view's decisions: charger state, counts, chart points (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from csms.core.fleet import (
    ChargerRow,
    FleetFilter,
    SampleRow,
    charger_state,
    chart_points,
    fleet_counts,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def row(*statuses: str, gone_for: timedelta | None = None) -> ChargerRow:
    return ChargerRow(
        charge_point_id="CP-1",
        vendor="Acme",
        model="W22",
        firmware_version="1.2",
        security_profile=1,
        last_seen=NOW - timedelta(minutes=1),
        disconnected_at=None if gone_for is None else NOW - gone_for,
        connected_at=NOW - timedelta(hours=1),
        connectors=tuple((i, status, "NoError") for i, status in enumerate(statuses, 1)),
    )


@pytest.mark.parametrize(
    ("charger", "online", "charging", "faulted", "stale"),
    [
        (row("Available", "Charging"), True, True, False, False),
        (row("SuspendedEV"), True, True, False, False),
        (row("Faulted"), True, False, True, False),
        (row("Charging", gone_for=timedelta(minutes=5)), False, False, False, False),
        (row("Available", gone_for=timedelta(minutes=11)), False, False, False, True),
    ],
)
def test_charger_state(
    charger: ChargerRow, online: bool, charging: bool, faulted: bool, stale: bool
) -> None:
    """Charging needs a live connection; offline counts as stale after 10 minutes."""
    state = charger_state(charger, online=online, now=NOW)
    assert (state.charging, state.faulted, state.stale) == (charging, faulted, stale)


def test_counts_and_filters() -> None:
    """Counts cover the whole fleet; filters and the search pick rows."""
    states = [
        charger_state(row("Charging"), online=True, now=NOW),
        charger_state(row("Faulted"), online=True, now=NOW),
        charger_state(row("Available", gone_for=timedelta(hours=1)), online=False, now=NOW),
    ]
    counts = fleet_counts(states)
    assert (counts.total, counts.online, counts.charging, counts.faulted, counts.stale) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert [s.matches(FleetFilter.STALE, "") for s in states] == [False, False, True]
    assert states[0].matches(FleetFilter.ALL, "acme")
    assert not states[0].matches(FleetFilter.ALL, "nope")


def sample(
    minute: int, measurand: str, unit: str, value: str, phase: str | None = None
) -> SampleRow:
    return SampleRow(NOW + timedelta(minutes=minute), measurand, unit, phase, value)


def test_chart_points_scale_units_and_add_phases() -> None:
    """kW and kWh become W and Wh; per-phase power alone adds up; a total wins over phases."""
    points = chart_points(
        [
            sample(0, "Power.Active.Import", "kW", "7.2"),
            sample(0, "Energy.Active.Import.Register", "kWh", "1.5"),
            sample(1, "Power.Active.Import", "W", "2300", "L1"),
            sample(1, "Power.Active.Import", "W", "2300", "L2"),
            sample(1, "Energy.Active.Import.Register", "Wh", "1620"),
            sample(2, "Power.Active.Import", "W", "oops"),
        ]
    )
    assert [(p.power_w, p.energy_wh) for p in points] == [
        (Decimal("7200.0"), Decimal("1500.0")),
        (Decimal("4600"), Decimal("1620")),
    ]
