"""Purchase cost of a session's energy under an electricity rate (csms.core.rates)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from csms.core.ocpi import DayOfWeek
from csms.core.rates import ElectricityRate, PricePoint, TimeOfUse, purchase_cost
from csms.core.tariffs import UsagePeriod

BERLIN = ZoneInfo("Europe/Berlin")
D = Decimal
DAY_NIGHT = (
    TimeOfUse(start=time(7), end=time(23), price=D("0.30")),
    TimeOfUse(start=time(23), end=time(7), price=D("0.10")),
)


def _local(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=BERLIN).astimezone(UTC)


def test_time_of_use_wraps_past_midnight_and_splits_a_period() -> None:
    """22:00-24:00 local at 6 kWh an hour: 6 kWh at the day price, 6 at the night price."""
    rate = ElectricityRate(currency="EUR", zone=BERLIN, time_of_use=DAY_NIGHT)
    periods = [UsagePeriod(start=_local(2, 22), energy_kwh=D(12), time_h=D(2))]
    assert purchase_cost(rate, periods, end=_local(3, 0)) == D("2.40")


def test_uploaded_prices_win_over_the_table() -> None:
    """An uploaded day-ahead hour replaces the table's price for that hour only."""
    spot = PricePoint(start=_local(2, 10), end=_local(2, 11), price=D("0.05"))
    rate = ElectricityRate(currency="EUR", zone=BERLIN, time_of_use=DAY_NIGHT, points=(spot,))
    periods = [UsagePeriod(start=_local(2, 10), energy_kwh=D(20), time_h=D(2))]
    assert purchase_cost(rate, periods, end=_local(2, 12)) == D("3.50")  # 10*0.05 + 10*0.30


def test_weekday_windows_and_unknown_prices_cost_nothing() -> None:
    """A window for weekdays only leaves Sunday energy unpriced (zero purchase cost)."""
    weekdays = frozenset(DayOfWeek) - {DayOfWeek.SATURDAY, DayOfWeek.SUNDAY}
    rate = ElectricityRate(
        currency="EUR",
        zone=BERLIN,
        time_of_use=(TimeOfUse(start=time(0), end=time(0), price=D("0.2"), days=weekdays),),
    )
    sunday = [UsagePeriod(start=_local(1, 10), energy_kwh=D(5), time_h=D(1))]
    monday = [UsagePeriod(start=_local(2, 10), energy_kwh=D(5), time_h=D(1))]
    end = timedelta(hours=1)
    assert purchase_cost(rate, sunday, end=_local(1, 10) + end) == D("0.00")
    assert purchase_cost(rate, monday, end=_local(2, 10) + end) == D("1.00")
