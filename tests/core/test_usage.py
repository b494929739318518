"""Charging periods from meter values and connector statuses (csms.core.usage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from csms.core.meter import Sample
from csms.core.session import CURRENT_UNITS_A, POWER_UNITS_KW, phase_totals
from csms.core.usage import Limits, usage_periods

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
D = Decimal


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def register(minutes: int, wh: int) -> Sample:
    return Sample(
        at(minutes),
        str(wh),
        "Energy.Active.Import.Register",
        "Wh",
        "Sample.Periodic",
        "Outlet",
        "",
        "Raw",
    )


def power(minutes: int, watts: int) -> Sample:
    return Sample(
        at(minutes), str(watts), "Power.Active.Import", "W", "Sample.Periodic", "Outlet", "", "Raw"
    )


def test_suspended_without_energy_and_finishing_are_parking() -> None:
    """Charging 60 min, SuspendedEV with no energy 20 min, Finishing 10 min: 60 + 30 parked."""
    periods = usage_periods(
        start=T0,
        end=at(90),
        meter_start_wh=1000,
        meter_stop_wh=11000,
        samples=[register(30, 6000), register(60, 11000), register(75, 11000)],
        statuses=[
            (at(-1), "Preparing"),
            (T0, "Charging"),
            (at(60), "SuspendedEV"),
            (at(80), "Finishing"),
        ],
    )
    assert [(p.start, p.time_h, p.parking_h) for p in periods] == [
        (T0, D(1), D(0)),
        (at(60), D(0), D("0.5")),
    ]
    assert periods[0].energy_kwh == D(10)
    assert periods[1].energy_kwh == D(0)


def test_energy_goes_to_the_time_the_connector_could_charge() -> None:
    """A reading interval that ends suspended puts its energy in the charging part only."""
    periods = usage_periods(
        start=T0,
        end=at(60),
        meter_start_wh=0,
        meter_stop_wh=3000,
        samples=[],
        statuses=[(T0, "Charging"), (at(30), "SuspendedEVSE")],
    )
    assert [(p.energy_kwh, p.time_h, p.parking_h) for p in periods] == [
        (D(3), D("0.5"), D(0)),
        (D(0), D(0), D("0.5")),
    ]


def test_no_status_known_means_charging_all_along() -> None:
    """Without StatusNotifications, the whole session is charging time."""
    periods = usage_periods(
        start=T0, end=at(45), meter_start_wh=0, meter_stop_wh=500, samples=[register(15, 100)]
    )
    assert len(periods) == 1
    assert (periods[0].time_h, periods[0].parking_h, periods[0].energy_kwh) == (
        D("0.75"),
        D(0),
        D("0.5"),
    )


def test_power_crossing_a_tariff_limit_starts_a_period() -> None:
    """Power samples below, above, below 16 kW make three periods with their extremes."""
    samples = [
        power(10, 6000),
        register(10, 1000),
        power(20, 48000),
        register(20, 9000),
        power(30, 4000),
        register(30, 9600),
    ]
    periods = usage_periods(
        start=T0,
        end=at(30),
        meter_start_wh=0,
        meter_stop_wh=9600,
        samples=samples,
        limits=Limits(power_kw=(D(16),)),
    )
    assert [(p.start, p.max_power_kw, p.energy_kwh) for p in periods] == [
        (T0, D(6), D(1)),
        (at(10), D(48), D(8)),
        (at(20), D(4), D("0.6")),
    ]


def test_running_session_ends_at_the_last_reading() -> None:
    """While running (no meterStop), the last register reading closes the usage."""
    periods = usage_periods(
        start=T0, end=at(20), meter_start_wh=500, meter_stop_wh=None, samples=[register(20, 2500)]
    )
    assert sum((p.energy_kwh for p in periods), D(0)) == D(2)


def _reading(minutes: int, value: str, *, phase: str = "", unit: str = "W", **kw: str) -> Sample:
    return Sample(
        at(minutes),
        value,
        kw.get("measurand", "Power.Active.Import"),
        unit,
        "Sample.Periodic",
        kw.get("location", "Outlet"),
        phase,
        kw.get("format", "Raw"),
    )


def test_phase_totals_prefer_the_total_and_else_sum_the_phases() -> None:
    """Per time, in order: the phase-less value wins; else L1..L3 (L-N) summed; odd ones out."""
    samples = [
        _reading(5, "3", unit="kW"),  # a total, in kW
        _reading(5, "1000", phase="L1"),  # ignored: the total at 5 wins
        _reading(0, "1000", phase="L1-N"),
        _reading(0, "2000", phase="L2"),
        _reading(0, "400", phase="L1-L2"),  # line to line: not a share of the total
        _reading(10, "7", unit="A"),  # a unit that is not power's
        _reading(10, "x"),  # not a number
        _reading(15, "5000", location="Inlet"),  # the grid side, not the EV's
        _reading(20, "9", measurand="Current.Import", unit="A"),
    ]
    assert phase_totals(samples, measurand="Power.Active.Import", units=POWER_UNITS_KW) == [
        (at(0), D(3)),
        (at(5), D(3)),
    ]
    assert phase_totals(samples, measurand="Current.Import", units=CURRENT_UNITS_A) == [
        (at(20), D(9))
    ]
