"""Properties of the cost engine over generated tariffs and sessions (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.ocpi import PriceFacts, TariffDimensionType
from csms.core.tariffs import (
    PriceComponent,
    Restrictions,
    Tariff,
    TariffElement,
    UsagePeriod,
    price_session,
)

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DIMENSIONS = list(TariffDimensionType)

prices = st.decimals(min_value=0, max_value=5, places=2)
vats = st.one_of(st.none(), st.decimals(min_value=0, max_value=30, places=1))
steps = st.sampled_from([0, 1, 60, 100, 300, 900, 1800])
energies = st.decimals(min_value=0, max_value=120, places=3)
hours = st.decimals(min_value=0, max_value=12, places=3)


@st.composite
def components(draw: st.DrawFn) -> PriceComponent:
    return PriceComponent(
        type=draw(st.sampled_from(DIMENSIONS)),
        price=draw(prices),
        step_size=draw(steps),
        vat=draw(vats),
    )


@st.composite
def restrictions(draw: st.DrawFn) -> Restrictions:
    low = draw(st.one_of(st.none(), st.decimals(min_value=0, max_value=50, places=1)))
    return Restrictions(
        min_kwh=low,
        max_duration=draw(st.one_of(st.none(), st.integers(min_value=60, max_value=36_000))),
        max_power=draw(st.one_of(st.none(), st.decimals(min_value=1, max_value=150, places=0))),
    )


@st.composite
def tariffs(draw: st.DrawFn, *, restricted: bool = True) -> Tariff:
    count = draw(st.integers(min_value=1, max_value=4))
    elements = tuple(
        TariffElement(
            components=tuple(draw(st.lists(components(), min_size=1, max_size=3))),
            restrictions=draw(restrictions()) if restricted else Restrictions(),
        )
        for _ in range(count)
    )
    return Tariff(id="P", currency="EUR", elements=elements)


def _session(
    energy: Decimal, charging: Decimal, parking: Decimal
) -> tuple[list[UsagePeriod], datetime]:
    periods = [UsagePeriod(start=START, energy_kwh=energy, time_h=charging)]
    parked = START + timedelta(seconds=float(charging * 3600))
    if parking:
        periods.append(UsagePeriod(start=parked, parking_h=parking))
    return periods, parked + timedelta(seconds=float(parking * 3600))


def _cost(tariff: Tariff, energy: Decimal, charging: Decimal, parking: Decimal) -> Decimal:
    periods, end = _session(energy, charging, parking)
    return price_session(tariff, periods, end=end).total.excl_vat


@settings(max_examples=200, deadline=None)
@given(tariffs(), energies, hours, hours)
def test_cost_is_never_negative(
    tariff: Tariff, energy: Decimal, charging: Decimal, parking: Decimal
) -> None:
    """With prices of zero or more, no session costs less than nothing, excl. or incl. VAT."""
    periods, end = _session(energy, charging, parking)
    costs = price_session(tariff, periods, end=end)
    assert costs.total.excl_vat >= 0
    assert costs.total.incl_vat is None or costs.total.incl_vat >= costs.total.excl_vat


@settings(max_examples=200, deadline=None)
@given(tariffs(restricted=False), energies, energies, hours, hours)
def test_unrestricted_cost_grows_with_energy_and_time(
    tariff: Tariff, energy: Decimal, more_energy: Decimal, charging: Decimal, more_time: Decimal
) -> None:
    """Without restrictions, more energy or more time never costs less."""
    base = _cost(tariff, energy, charging, Decimal(0))
    assert _cost(tariff, energy + more_energy, charging, Decimal(0)) >= base
    assert _cost(tariff, energy, charging + more_time, Decimal(0)) >= base


@settings(max_examples=200, deadline=None)
@given(
    tariffs(),
    st.decimals(min_value=0, max_value=20, places=2),
    st.decimals(min_value=0, max_value=40, places=2),
    energies,
    hours,
    hours,
)
def test_min_and_max_price_bound_the_total(
    tariff: Tariff,
    minimum: Decimal,
    span: Decimal,
    energy: Decimal,
    charging: Decimal,
    parking: Decimal,
) -> None:
    """The total excl. and incl. VAT never leaves [min_price, max_price]."""
    low = PriceFacts(excl_vat=minimum, incl_vat=minimum * Decimal("1.2"))
    high = PriceFacts(excl_vat=minimum + span, incl_vat=(minimum + span) * Decimal("1.2"))
    bounded = Tariff(
        id="P", currency="EUR", elements=tariff.elements, min_price=low, max_price=high
    )
    periods, end = _session(energy, charging, parking)
    total = price_session(bounded, periods, end=end).total
    assert low.excl_vat <= total.excl_vat <= high.excl_vat
    if total.incl_vat is not None:
        assert low.incl_vat is not None
        assert high.incl_vat is not None
        assert low.incl_vat <= total.incl_vat <= high.incl_vat


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([TariffDimensionType.ENERGY, TariffDimensionType.TIME]),
    prices,
    steps,
    energies,
    hours,
)
def test_step_size_never_charges_less_than_the_exact_amount(
    dimension: TariffDimensionType, price: Decimal, step: int, energy: Decimal, charging: Decimal
) -> None:
    """Rounding the volume up to step_size costs at least the exact volume times the price."""
    tariff = Tariff(
        id="P",
        currency="EUR",
        elements=(TariffElement(components=(PriceComponent(dimension, price, step),)),),
    )
    volume = energy if dimension is TariffDimensionType.ENERGY else charging
    exact = (volume * price).quantize(Decimal("0.01"))
    assert _cost(tariff, energy, charging, Decimal(0)) >= exact
