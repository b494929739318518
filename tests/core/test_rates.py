"""Purchase cost of a session's energy under an electricity rate, and which rate applies
(csms.core.rates)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from csms.core.ocpi import DayOfWeek
from csms.core.rates import (
    ElectricityRate,
    PricePoint,
    RatePlace,
    RateScope,
    TimeOfUse,
    choose_rate,
    margin,
    purchase_cost,
    rate_candidates,
    session_purchase,
)
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


@pytest.mark.parametrize(
    ("circuits", "location_id", "expected"),
    [
        ([], None, []),
        ([], "SITE", [(RateScope.LOCATION, "SITE")]),
        (["C1"], None, [(RateScope.CIRCUIT, "C1")]),
        (
            ["SUB", "MAIN"],
            "SITE",
            [(RateScope.CIRCUIT, "SUB"), (RateScope.CIRCUIT, "MAIN"), (RateScope.LOCATION, "SITE")],
        ),
    ],
)
def test_rate_candidates_go_from_the_circuit_up_to_the_site(
    circuits: list[str], location_id: str | None, expected: list[RatePlace]
) -> None:
    """The connector's circuit first, then the circuits above it, nearest first, then its site."""
    assert rate_candidates(circuits=circuits, location_id=location_id) == expected


CIRCUIT_AND_SITE = [
    (RateScope.CIRCUIT, "SUB"),
    (RateScope.CIRCUIT, "MAIN"),
    (RateScope.LOCATION, "S"),
]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ({}, None),
        ({(RateScope.LOCATION, "S"): "site"}, "site"),
        ({(RateScope.LOCATION, "S"): "site", (RateScope.CIRCUIT, "MAIN"): "main"}, "main"),
        (
            {
                (RateScope.LOCATION, "S"): "site",
                (RateScope.CIRCUIT, "MAIN"): "main",
                (RateScope.CIRCUIT, "SUB"): "sub",
            },
            "sub",
        ),
        # A rate of a circuit the connector is not on, or of another site, never applies.
        ({(RateScope.CIRCUIT, "OTHER"): "other", (RateScope.LOCATION, "X"): "x"}, None),
        # A circuit id equal to a site id is still a different place.
        ({(RateScope.LOCATION, "SUB"): "site named SUB"}, None),
    ],
)
def test_the_most_specific_rate_wins(stored: dict[RatePlace, str], expected: str | None) -> None:
    """A circuit's rate wins over the circuits above it, and any circuit's over the site's."""
    assert choose_rate(CIRCUIT_AND_SITE, stored) == expected


def test_a_circuit_rate_and_a_site_rate_cost_the_same_energy_differently() -> None:
    """The chosen rate prices the session: 10 kWh at the circuit's 0.08 or the site's 0.25."""
    hour = [UsagePeriod(start=_local(2, 10), energy_kwh=D(10), time_h=D(1))]
    every_day = (time(0), time(0))
    site = ElectricityRate(
        currency="EUR", zone=BERLIN, time_of_use=(TimeOfUse(*every_day, price=D("0.25")),)
    )
    circuit = ElectricityRate(
        currency="EUR", zone=BERLIN, time_of_use=(TimeOfUse(*every_day, price=D("0.08")),)
    )
    stored = {(RateScope.LOCATION, "S"): site, (RateScope.CIRCUIT, "MAIN"): circuit}
    end = _local(2, 11)
    on_circuit = choose_rate(rate_candidates(circuits=["MAIN"], location_id="S"), stored)
    off_circuit = choose_rate(rate_candidates(circuits=[], location_id="S"), stored)
    assert on_circuit is not None
    assert off_circuit is not None
    assert purchase_cost(on_circuit, hour, end=end) == D("0.80")
    assert purchase_cost(off_circuit, hour, end=end) == D("2.50")


FLAT_RATE = ElectricityRate(
    currency="EUR", zone=BERLIN, time_of_use=(TimeOfUse(time(0), time(0), price=D("0.15")),)
)
TWELVE_KWH = [UsagePeriod(start=_local(2, 10), energy_kwh=D(12), time_h=D(1))]


def test_a_session_is_bought_in_its_own_currency_or_not_at_all() -> None:
    """Without a rate, or with a rate in another currency, there is no purchase cost: csms
    never converts, nor puts a purchase in one currency beside a revenue in another."""
    end = _local(2, 11)
    assert session_purchase(FLAT_RATE, TWELVE_KWH, end=end, currency="EUR") == D("1.80")
    assert session_purchase(None, TWELVE_KWH, end=end, currency="EUR") is None
    assert session_purchase(FLAT_RATE, TWELVE_KWH, end=end, currency="CHF") is None
    yen = ElectricityRate(
        currency="JPY", zone=BERLIN, time_of_use=(TimeOfUse(time(0), time(0), price=D("30.4")),)
    )
    # Rounded to the currency's minor unit: 364.8 yen is 365.
    assert session_purchase(yen, TWELVE_KWH, end=end, currency="JPY") == D("365")


@pytest.mark.parametrize(
    ("revenue", "purchase", "expected"),
    [
        # Sold for 3.60 excl. VAT, bought for 1.80.
        (D("3.60"), D("1.80"), D("1.80")),
        # No tariff: nothing sold, the whole purchase is lost.
        (None, D("1.80"), D("-1.80")),
        # A free tariff (cost 0) is the same.
        (D("0.00"), D("1.80"), D("-1.80")),
        # Energy at a moment without a price costs nothing to buy.
        (D("2.50"), D("0.00"), D("2.50")),
        # A credit CDR negates both: its margin is the negated margin.
        (D("-3.60"), D("-1.80"), D("-1.80")),
    ],
)
def test_margin_is_revenue_excl_vat_minus_purchase(
    revenue: Decimal | None, purchase: Decimal, expected: Decimal
) -> None:
    """margin = cost excl. VAT (0 without a tariff) - purchase cost, exact in Decimal."""
    assert margin(revenue, purchase) == expected
    assert isinstance(margin(revenue, purchase), Decimal)
