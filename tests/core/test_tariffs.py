"""The cost engine against the OCPI 2.2.1 mod_tariffs examples, each with a worked session.

Each tariff is the spec's example object (ocpi/ocpi tag 2.2.1, examples/tariff_*.json);
each session is the one the spec's text describes, and the expected figures are the
spec's, to the cent (docs/tariffs.md lists the two examples where the spec contradicts
its own step_size rule, and what csms answers there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from csms.core.ocpi import PriceFacts
from csms.core.tariff_ocpi import ocpi_charging_periods, ocpi_cost_fields, tariff_from_ocpi
from csms.core.tariffs import CostLine, Costs, UsagePeriod, price_session

BERLIN = ZoneInfo("Europe/Berlin")
D = Decimal


def _tariff(elements: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": "ALL",
        "id": extra.pop("id", "T1"),
        "currency": "EUR",
        "elements": elements,
        "last_updated": "2018-12-17T11:16:55Z",
        **extra,
    }


def _component(kind: str, price: float, step: int, vat: float | None = None) -> dict[str, Any]:
    component: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        component["vat"] = vat
    return component


def _hours(minutes: float) -> Decimal:
    return D(str(minutes)) / 60


def session(
    start: datetime,
    *,
    charging_min: float,
    kwh: str = "0",
    parking_min: float = 0,
    **electrical: Decimal,
) -> tuple[list[UsagePeriod], datetime]:
    """A charging period then, if any, a parking period; the session's end."""
    periods = [
        UsagePeriod(start=start, energy_kwh=D(kwh), time_h=_hours(charging_min), **electrical)
    ]
    parked = start + timedelta(minutes=charging_min)
    if parking_min:
        periods.append(UsagePeriod(start=parked, parking_h=_hours(parking_min)))
    return periods, parked + timedelta(minutes=parking_min)


def priced(tariff: dict[str, Any], periods: list[UsagePeriod], end: datetime) -> Costs:
    return price_session(tariff_from_ocpi(tariff), periods, end=end, zone=BERLIN)


def euros(costs: Costs) -> tuple[Decimal, Decimal | None]:
    return costs.total.excl_vat, costs.total.incl_vat


MONDAY = datetime(2019, 6, 3, 7, 30, tzinfo=UTC)  # 09:30 in Berlin (CEST)
SATURDAY = datetime(2019, 6, 8, 11, 30, tzinfo=UTC)  # 13:30 in Berlin

TARIFF_8 = _tariff([{"price_components": [_component("ENERGY", 0.25, 1, 10.0)]}])
TARIFF_9 = _tariff(
    [{"price_components": [_component("FLAT", 0.50, 1, 20.0), _component("ENERGY", 0.25, 1, 10.0)]}]
)
TARIFF_12 = _tariff(
    [{"price_components": [_component("ENERGY", 0.25, 1, 10.0)]}],
    min_price={"excl_vat": 0.50, "incl_vat": 0.55},
)
TARIFF_10 = _tariff(
    [
        {
            "price_components": [
                _component("FLAT", 0.50, 1, 20.0),
                _component("ENERGY", 0.25, 1, 10.0),
                _component("PARKING_TIME", 2.00, 900, 20.0),
            ]
        }
    ]
)
TARIFF_6 = _tariff(
    [
        {
            "price_components": [
                _component("FLAT", 0.50, 1, 20.0),
                _component("ENERGY", 0.25, 1, 10.0),
            ]
        }
    ],
    max_price={"excl_vat": 10.00, "incl_vat": 11.00},
    end_date_time="2019-06-30T23:59:59Z",
)
TARIFF_1 = _tariff([{"price_components": [_component("TIME", 2.00, 60, 10.0)]}])
TARIFF_13 = _tariff(
    [
        {
            "price_components": [
                _component("TIME", 3.00, 60, 10.0),
                _component("PARKING_TIME", 5.00, 300, 20.0),
            ]
        }
    ]
)
TARIFF_2 = _tariff([{"price_components": [_component("TIME", 1.90, 300, 5.2)]}])
TARIFF_11 = _tariff(
    [{"price_components": [_component("FLAT", 0.40, 1, 25.0), _component("TIME", 1.90, 300, 5.2)]}]
)
TARIFF_3 = _tariff(
    [
        {
            "price_components": [
                _component("FLAT", 0.50, 1, 20.0),
                _component("ENERGY", 0.25, 100, 10.0),
            ]
        }
    ]
)
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]
TARIFF_4 = _tariff(
    [
        {"price_components": [_component("FLAT", 2.50, 1, 15.0)]},
        {
            "price_components": [_component("TIME", 1.00, 900, 20.0)],
            "restrictions": {"max_current": 32.00},
        },
        {
            "price_components": [_component("TIME", 2.00, 600, 20.0)],
            "restrictions": {"min_current": 32.00, "day_of_week": WEEKDAYS},
        },
        {
            "price_components": [_component("TIME", 1.25, 600, 20.0)],
            "restrictions": {"min_current": 32.00, "day_of_week": ["SATURDAY", "SUNDAY"]},
        },
        {
            "price_components": [_component("PARKING_TIME", 5.00, 300, 10.0)],
            "restrictions": {"start_time": "09:00", "end_time": "18:00", "day_of_week": WEEKDAYS},
        },
        {
            "price_components": [_component("PARKING_TIME", 6.00, 300, 10.0)],
            "restrictions": {
                "start_time": "10:00",
                "end_time": "17:00",
                "day_of_week": ["SATURDAY"],
            },
        },
    ]
)
TARIFF_5 = _tariff([{"price_components": [_component("FLAT", 0.00, 0)]}])
TARIFF_7 = _tariff(
    [
        {
            "price_components": [_component("PARKING_TIME", 0.0, 60)],
            "restrictions": {"min_duration": 0, "max_duration": 3600},
        },
        {
            "price_components": [_component("PARKING_TIME", 2.0, 60)],
            "restrictions": {"min_duration": 3600, "max_duration": 10800},
        },
        {
            "price_components": [_component("PARKING_TIME", 3.0, 60)],
            "restrictions": {"min_duration": 10800},
        },
        {"price_components": [_component("ENERGY", 0.0, 1)], "restrictions": {"max_kwh": 1.0}},
        {"price_components": [_component("ENERGY", 0.2, 1)], "restrictions": {"min_kwh": 1.0}},
    ]
)
TARIFF_14 = _tariff(
    [
        {
            "price_components": [
                _component("TIME", 1.20, 1800),
                _component("PARKING_TIME", 1.00, 900),
            ],
            "restrictions": {"start_time": "00:00", "end_time": "17:00"},
        },
        {
            "price_components": [
                _component("TIME", 2.40, 900),
                _component("PARKING_TIME", 1.00, 900),
            ],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [_component("TIME", 2.40, 900)],
            "restrictions": {"start_time": "20:00", "end_time": "00:00"},
        },
    ]
)
TARIFF_MAX_POWER = _tariff(
    [
        {
            "price_components": [_component("ENERGY", 0.20, 1, 20.0)],
            "restrictions": {"max_power": 16.00},
        },
        {
            "price_components": [_component("ENERGY", 0.35, 1, 20.0)],
            "restrictions": {"max_power": 32.00},
        },
        {"price_components": [_component("ENERGY", 0.50, 1, 20.0)]},
    ]
)
TARIFF_MAX_DURATION = _tariff(
    [
        {
            "price_components": [_component("ENERGY", 0.00, 1, 20.0)],
            "restrictions": {"max_duration": 1800},
        },
        {
            "price_components": [_component("ENERGY", 0.25, 1, 20.0)],
            "restrictions": {"max_duration": 3600},
        },
        {"price_components": [_component("ENERGY", 0.40, 1, 20.0)]},
    ]
)
TARIFF_15 = _tariff(
    [
        {
            "price_components": [_component("TIME", 5.00, 60, 20.0)],
            "restrictions": {"reservation": "RESERVATION"},
        },
        {
            "price_components": [
                _component("FLAT", 0.50, 1, 20.0),
                _component("ENERGY", 0.25, 1, 10.0),
            ]
        },
    ]
)
TARIFF_16 = _tariff(
    [
        {
            "price_components": [
                _component("FLAT", 2.00, 1, 20.0),
                _component("TIME", 5.00, 300, 20.0),
            ],
            "restrictions": {"reservation": "RESERVATION"},
        },
        TARIFF_15["elements"][1],
    ]
)
TARIFF_17 = _tariff(
    [
        {
            "price_components": [_component("FLAT", 4.00, 1, 20.0)],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"},
        },
        {
            "price_components": [_component("TIME", 2.00, 600, 20.0)],
            "restrictions": {"reservation": "RESERVATION"},
        },
        TARIFF_15["elements"][1],
    ]
)
TARIFF_18 = _tariff(
    [
        {
            "price_components": [_component("TIME", 6.00, 600, 20.0)],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"},
        },
        {
            "price_components": [_component("TIME", 3.00, 600, 20.0)],
            "restrictions": {"reservation": "RESERVATION"},
        },
        TARIFF_15["elements"][1],
    ]
)
START = datetime(2019, 6, 3, 8, 0, tzinfo=UTC)


def test_simple_energy_tariff_20_kwh() -> None:
    """Example "0.25 euro per kWh": 20 kWh cost 5.00 excl. and 5.50 incl. VAT."""
    assert euros(priced(TARIFF_8, *session(START, charging_min=120, kwh="20"))) == (
        D("5.00"),
        D("5.50"),
    )


def test_energy_with_start_fee() -> None:
    """Example "0.25 euro per kWh + start fee": 20 kWh cost 5.50 excl. and 6.10 incl."""
    costs = priced(TARIFF_9, *session(START, charging_min=120, kwh="20"))
    assert euros(costs) == (D("5.50"), D("6.10"))
    assert costs.line(CostLine.FIXED) == PriceFacts(D("0.50"), D("0.60"))


@pytest.mark.parametrize(
    ("kwh", "expected"),
    [("20", (D("5.00"), D("5.50"))), ("1", (D("0.50"), D("0.55")))],
)
def test_minimum_price(kwh: str, expected: tuple[Decimal, Decimal]) -> None:
    """Example "+ minimum price": 20 kWh cost 5.00/5.50; under 2 kWh the minimum 0.50/0.55."""
    assert euros(priced(TARIFF_12, *session(START, charging_min=60, kwh=kwh))) == expected


def test_parking_fee_billed_per_15_minutes() -> None:
    """Example "+ parking fee + start fee": 20 kWh and 40 min parked cost 7.00/7.90."""
    costs = priced(TARIFF_10, *session(START, charging_min=120, kwh="20", parking_min=40))
    assert euros(costs) == (D("7.00"), D("7.90"))
    assert costs.line(CostLine.PARKING) == PriceFacts(D("1.50"), D("1.80"))


@pytest.mark.parametrize(
    ("kwh", "expected"),
    [("50", (D("10.00"), D("11.00"))), ("30", (D("8.00"), D("8.85")))],
)
def test_maximum_price(kwh: str, expected: tuple[Decimal, Decimal]) -> None:
    """Example "+ max price": 50 kWh are capped at 10.00/11.00; 30 kWh cost 8.00/8.85."""
    assert euros(priced(TARIFF_6, *session(START, charging_min=240, kwh=kwh))) == expected


def test_two_euro_per_hour() -> None:
    """Example "2 euro per hour": 2.5 hours charging cost 5.00/5.50."""
    assert euros(priced(TARIFF_1, *session(START, charging_min=150, kwh="11"))) == (
        D("5.00"),
        D("5.50"),
    )


def test_three_euro_per_hour_and_parking() -> None:
    """Example "3 euro per hour, 5 euro parking": 150 min + 42 min parked cost 11.25/12.75."""
    costs = priced(TARIFF_13, *session(START, charging_min=150, kwh="11", parking_min=42))
    assert euros(costs) == (D("11.25"), D("12.75"))


def test_ad_hoc_time_tariff() -> None:
    """Example "Ad-Hoc ... multiple languages": 2.5 hours cost 4.75 excl. and 5.00 incl."""
    assert euros(priced(TARIFF_2, *session(START, charging_min=150, kwh="11"))) == (
        D("4.75"),
        D("5.00"),
    )


def test_ad_hoc_alt_text_tariff() -> None:
    """Example "not possible with OCPI": one hour is 2.00 + the 0.50 start, incl. VAT."""
    assert euros(priced(TARIFF_11, *session(START, charging_min=60, kwh="7"))) == (
        D("2.30"),
        D("2.50"),
    )


def test_energy_step_of_100_wh() -> None:
    """Example "alternative URL": 20.45 kWh billed as 20.5 kWh: 5.63 excl., 6.24 incl."""
    costs = priced(TARIFF_3, *session(START, charging_min=120, kwh="20.45"))
    assert costs.line(CostLine.ENERGY) == PriceFacts(D("5.13"), D("5.64"))
    assert euros(costs) == (D("5.63"), D("6.24"))


def test_complex_tariff_monday_morning() -> None:
    """Complex example, Monday 09:30: 165 min at 16 A and 42 min parked cost 9.00/10.30."""
    periods, end = session(MONDAY, charging_min=165, kwh="9", parking_min=42, max_current_a=D(16))
    costs = priced(TARIFF_4, periods, end)
    assert euros(costs) == (D("9.00"), D("10.30"))
    assert costs.line(CostLine.TIME).excl_vat == D("2.75")
    assert costs.line(CostLine.PARKING).excl_vat == D("3.75")


def test_complex_tariff_saturday_afternoon() -> None:
    """Complex example, Saturday 13:30: 114 min at 43 A, 71 parked: 12.375/13.975 (12.38/13.98)."""
    periods, end = session(
        SATURDAY, charging_min=114, kwh="50", parking_min=71, min_current_a=D(43)
    )
    costs = priced(TARIFF_4, periods, end)
    assert costs.line(CostLine.TIME).excl_vat == D("2.38")  # 2.375
    assert costs.line(CostLine.PARKING) == PriceFacts(D("7.50"), D("8.25"))
    assert euros(costs) == (D("12.38"), D("13.98"))


def test_free_of_charge() -> None:
    """Example "Free of Charge": nothing to pay, VAT or not."""
    assert euros(priced(TARIFF_5, *session(START, charging_min=90, kwh="20"))) == (D(0), D(0))


def test_first_kwh_and_first_hour_of_parking_free() -> None:
    """Example "First hour free energy": 20 kWh and 2:45 h parked cost 7.30, no incl. VAT.

    The spec counts the parking hours from when charging ended, so its session charges in
    no time; restrictions count the duration of the session (mod_tariffs §TariffRestrictions).
    """
    periods = [
        UsagePeriod(start=START, energy_kwh=D(20)),
        UsagePeriod(start=START, parking_h=D("2.75")),
    ]
    costs = priced(TARIFF_7, periods, START + timedelta(hours=2, minutes=45))
    assert costs.line(CostLine.ENERGY).excl_vat == D("3.80")
    assert costs.line(CostLine.PARKING).excl_vat == D("3.50")
    assert euros(costs) == (D("7.30"), None)


def test_max_power_restriction() -> None:
    """max_power example: 1 kWh at 6 kW, 40 kWh at 48 kW, 0.5 kWh at 4 kW cost 20.30."""
    at = START
    periods = []
    for kwh, kw in (("1", 6), ("40", 48), ("0.5", 4)):
        hours = D(kwh) / kw
        periods.append(
            UsagePeriod(
                start=at, energy_kwh=D(kwh), time_h=hours, min_power_kw=D(kw), max_power_kw=D(kw)
            )
        )
        at += timedelta(seconds=float(hours * 3600))
    assert priced(TARIFF_MAX_POWER, periods, at).total.excl_vat == D("20.30")


def test_max_duration_restriction() -> None:
    """max_duration example: 5 kWh in the first 30 min free, 1.2 kWh in the next 10 at 0.25."""
    periods = [
        UsagePeriod(start=START, energy_kwh=D(5), time_h=D("0.5")),
        UsagePeriod(start=START + timedelta(minutes=30), energy_kwh=D("1.2"), time_h=_hours(10)),
    ]
    costs = priced(TARIFF_MAX_DURATION, periods, START + timedelta(minutes=40))
    assert costs.total.excl_vat == D("0.30")


def test_max_duration_cuts_a_period_that_spans_the_limit() -> None:
    """One 40-minute period at constant power is cut at 30 min: 1.55 kWh after it at 0.25."""
    periods = [UsagePeriod(start=START, energy_kwh=D("6.2"), time_h=_hours(40))]
    costs = priced(TARIFF_MAX_DURATION, periods, START + timedelta(minutes=40))
    assert costs.total.excl_vat == D("0.39")  # 6.2 kWh * 10/40 * 0.25 = 0.3875
    assert [p.usage.start for p in costs.periods] == [START, START + timedelta(minutes=30)]


def _local(hour: int, minute: int) -> datetime:
    return datetime(2019, 6, 3, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def test_step_size_switching_elements_second_example() -> None:
    """step_size example #2: 16:35 charging 35 min: 25 min at 1.20 + 20 min at 2.40 = 1.30."""
    costs = priced(TARIFF_14, *session(_local(16, 35), charging_min=35, kwh="6"))
    assert costs.total.excl_vat == D("1.30")
    assert [p.tariff_id for p in costs.periods] == ["T1", "T1"]
    assert [p.usage.start for p in costs.periods] == [_local(16, 35), _local(17, 0)]


def test_step_size_switching_elements_first_example() -> None:
    """step_size example #1 (16:55, 10 min charging, 2 parked): parking alone is rounded.

    mod_cdrs §step_size: "In the cases that TIME and PARKING_TIME Tariff Elements are both
    used, step_size is only taken into account for the total parking duration": 2 min of
    parking bill 15, so 0.10 + 0.20 + 0.25 = 0.55. (The example's 0.383 rounds the whole
    12 minutes instead, which its complex example does not; docs/tariffs.md.)
    """
    costs = priced(TARIFF_14, *session(_local(16, 55), charging_min=10, kwh="2", parking_min=2))
    assert costs.line(CostLine.TIME).excl_vat == D("0.30")
    assert costs.line(CostLine.PARKING).excl_vat == D("0.25")
    assert costs.total.excl_vat == D("0.55")


def test_step_size_with_free_parking_after_20() -> None:
    """Example "switching to Free-of-Charge": the last priced parking (before 20:00) rounds.

    19:40, 12 min charging (0.48), 20 min parked of which 8 before 20:00: rounded to 15 min
    at 1.00 = 0.25; the example's 0.78 rounds charging and parking together (docs/tariffs.md).
    """
    costs = priced(TARIFF_14, *session(_local(19, 40), charging_min=12, kwh="2", parking_min=20))
    assert costs.line(CostLine.TIME).excl_vat == D("0.48")
    assert costs.line(CostLine.PARKING).excl_vat == D("0.25")
    assert costs.total.excl_vat == D("0.73")


def _reserved(minutes: int, *, then_kwh: str | None) -> tuple[list[UsagePeriod], datetime]:
    periods = [UsagePeriod(start=START, reservation_h=_hours(minutes))]
    start = START + timedelta(minutes=minutes)
    if then_kwh is None:
        return periods, start
    periods.append(UsagePeriod(start=start, energy_kwh=D(then_kwh), time_h=D(2)))
    return periods, start + timedelta(hours=2)


@pytest.mark.parametrize(
    ("tariff", "minutes", "kwh", "expected"),
    [
        (TARIFF_15, 15, "20", (D("6.75"), D("7.60"))),
        (TARIFF_16, 13, "20", (D("8.75"), D("10.00"))),
        (TARIFF_17, 22, "20", (D("6.50"), D("7.30"))),
        (TARIFF_17, 60, None, (D("6.00"), D("7.20"))),
        (TARIFF_18, 22, "20", (D("7.00"), D("7.90"))),
        (TARIFF_18, 90, None, (D("9.00"), D("10.80"))),
    ],
    ids=["15", "16", "17", "17-expired", "18", "18-expired"],
)
def test_reservation_examples(
    tariff: dict[str, Any],
    minutes: int,
    kwh: str | None,
    expected: tuple[Decimal, Decimal],
) -> None:
    """Reservation examples 15-18: reservation time, fee and expiry priced as the spec says."""
    costs = priced(tariff, *_reserved(minutes, then_kwh=kwh))
    assert euros(costs) == expected


def test_spec_cdr_example_prices_to_its_total() -> None:
    """examples/cdr_example.json: 1.973 h at 2.00/h per 5 min costs 4.00/4.40."""
    tariff = _tariff([{"price_components": [_component("TIME", 2.00, 300, 10.0)]}], id="12")
    start = datetime(2015, 6, 29, 21, 39, 9, tzinfo=UTC)
    periods = [UsagePeriod(start=start, energy_kwh=D("15.342"), time_h=D("1.973"))]
    costs = priced(tariff, periods, datetime(2015, 6, 29, 23, 37, 32, tzinfo=UTC))
    fields = ocpi_cost_fields(costs)
    assert fields["total_cost"] == {"excl_vat": D("4.00"), "incl_vat": D("4.40")}
    assert fields["total_time_cost"] == {"excl_vat": D("4.00"), "incl_vat": D("4.40")}
    assert ocpi_charging_periods(costs)[0]["tariff_id"] == "12"


def test_time_restrictions_read_in_the_local_zone() -> None:
    """start_time 17:00 is 17:00 in the Location's zone, not UTC."""
    periods, end = session(_local(16, 0), charging_min=120, kwh="10")
    berlin = priced(TARIFF_14, periods, end)
    utc = price_session(tariff_from_ocpi(TARIFF_14), periods, end=end, zone=UTC)
    assert [p.usage.start for p in berlin.periods] == [_local(16, 0), _local(17, 0)]
    assert [p.usage.start for p in utc.periods] == [_local(16, 0)]  # 14:00-16:00 UTC


def test_wrapping_time_window_and_weekday() -> None:
    """A 22:00-06:00 window wraps past midnight; day_of_week uses the local date."""
    night = _tariff(
        [
            {
                "price_components": [_component("ENERGY", 0.10, 1)],
                "restrictions": {"start_time": "22:00", "end_time": "06:00"},
            },
            {"price_components": [_component("ENERGY", 0.30, 1)]},
        ]
    )
    periods, end = session(_local(21, 0), charging_min=120, kwh="12")  # 6 kWh an hour
    costs = priced(night, periods, end)
    assert costs.total.excl_vat == D("2.40")  # 6 * 0.30 + 6 * 0.10


def test_vat_unknown_when_a_component_has_none() -> None:
    """A component without VAT makes the incl. VAT total unknown (not zero)."""
    costs = priced(TARIFF_14, *session(_local(10, 0), charging_min=60, kwh="5"))
    assert costs.total == PriceFacts(D("1.20"), None)
    assert "incl_vat" not in ocpi_cost_fields(costs)["total_cost"]


def test_resolution_order_and_validity_window() -> None:
    """Subscription before user before EVSE before location before default; expired skipped."""
    from csms.core.tariffs import TariffSource, resolve_tariff

    def tariff(tariff_id: str, **window: str) -> Any:
        return tariff_from_ocpi({**TARIFF_8, "id": tariff_id, **window})

    candidates = [
        (TariffSource.DEFAULT, tariff("D")),
        (TariffSource.LOCATION, tariff("L")),
        (TariffSource.EVSE, tariff("E")),
        (TariffSource.USER, tariff("U", end_date_time="2019-01-01T00:00:00Z")),
        (TariffSource.SUBSCRIPTION, tariff("S", start_date_time="2030-01-01T00:00:00Z")),
    ]
    found = resolve_tariff(candidates, at=START)
    assert found is not None
    assert (found[0], found[1].id) == (TariffSource.EVSE, "E")
    assert resolve_tariff(candidates[:2], at=START) == (TariffSource.LOCATION, candidates[1][1])
    assert resolve_tariff([], at=START) is None
