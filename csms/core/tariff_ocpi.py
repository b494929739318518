"""OCPI 2.2.1 shapes around the cost engine: a Tariff object in, CDR cost fields out.

The engine (csms.core.tariffs) works on typed values; this module reads an OCPI Tariff
(mod_tariffs §Tariff Object) and ChargingPeriods (mod_cdrs §ChargingPeriod) into them and
writes Costs back as a CDR's cost fields and priced ChargingPeriods with `tariff_id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from csms.core.money import ZERO
from csms.core.ocpi import (
    CdrDimensionType,
    DayOfWeek,
    PricedCdrParts,
    PriceFacts,
    ReservationRestrictionType,
    TariffDimensionType,
    round_number,
)
from csms.core.tariffs import (
    CostLine,
    Costs,
    PriceComponent,
    PricedPeriod,
    Restrictions,
    Tariff,
    TariffElement,
    UsagePeriod,
)

# --- an OCPI Tariff in -----------------------------------------------------------------------


def _number(value: Any) -> Decimal:
    # JSON numbers arrive as int/float (shortest text, so 0.1 stays 0.1) or already Decimal.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    return Decimal(str(value))


def _optional_number(data: Mapping[str, Any], key: str) -> Decimal | None:
    return None if data.get(key) is None else _number(data[key])


def _time_of_day(text: str | None) -> time | None:
    return None if text is None else time.fromisoformat(text)


def _price(data: Mapping[str, Any] | None) -> PriceFacts | None:
    if data is None:
        return None
    return PriceFacts(
        excl_vat=_number(data["excl_vat"]), incl_vat=_optional_number(data, "incl_vat")
    )


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _restrictions(data: Mapping[str, Any] | None) -> Restrictions:
    if not data:
        return Restrictions()
    duration = {key: data.get(key) for key in ("min_duration", "max_duration")}
    return Restrictions(
        start_time=_time_of_day(data.get("start_time")),
        end_time=_time_of_day(data.get("end_time")),
        start_date=None
        if data.get("start_date") is None
        else date.fromisoformat(data["start_date"]),
        end_date=None if data.get("end_date") is None else date.fromisoformat(data["end_date"]),
        min_kwh=_optional_number(data, "min_kwh"),
        max_kwh=_optional_number(data, "max_kwh"),
        min_current=_optional_number(data, "min_current"),
        max_current=_optional_number(data, "max_current"),
        min_power=_optional_number(data, "min_power"),
        max_power=_optional_number(data, "max_power"),
        min_duration=None if duration["min_duration"] is None else int(duration["min_duration"]),
        max_duration=None if duration["max_duration"] is None else int(duration["max_duration"]),
        day_of_week=frozenset(DayOfWeek(day) for day in data.get("day_of_week") or ()),
        reservation=None
        if data.get("reservation") is None
        else ReservationRestrictionType(data["reservation"]),
    )


def tariff_from_ocpi(data: Mapping[str, Any]) -> Tariff:
    """The engine's Tariff from an OCPI 2.2.1 Tariff object (already validated, JSON form).

    Raises:
        ValueError, KeyError: the object is not a Tariff (validate it first).
    """
    elements = tuple(
        TariffElement(
            components=tuple(
                PriceComponent(
                    type=TariffDimensionType(component["type"]),
                    price=_number(component["price"]),
                    step_size=int(component["step_size"]),
                    vat=_optional_number(component, "vat"),
                )
                for component in element["price_components"]
            ),
            restrictions=_restrictions(element.get("restrictions")),
        )
        for element in data["elements"]
    )
    return Tariff(
        id=str(data["id"]),
        currency=str(data["currency"]),
        elements=elements,
        min_price=_price(data.get("min_price")),
        max_price=_price(data.get("max_price")),
        start_date_time=_datetime(data.get("start_date_time")),
        end_date_time=_datetime(data.get("end_date_time")),
    )


# --- OCPI shapes -----------------------------------------------------------------------------


def _ocpi_price(price: PriceFacts) -> dict[str, Any]:
    out: dict[str, Any] = {"excl_vat": price.excl_vat}
    if price.incl_vat is not None:
        out["incl_vat"] = price.incl_vat
    return out


def ocpi_cost_fields(costs: Costs) -> dict[str, Any]:
    """`total_cost` and the cost lines as OCPI mod_cdrs §CDR Object names them (Prices)."""
    fields = {"total_cost": _ocpi_price(costs.total)}
    for name in (CostLine.FIXED, CostLine.ENERGY, CostLine.TIME, CostLine.PARKING):
        fields[name] = _ocpi_price(costs.line(name))
    if CostLine.RESERVATION in costs.lines:
        fields[CostLine.RESERVATION] = _ocpi_price(costs.lines[CostLine.RESERVATION])
    return fields


def ocpi_charging_periods(costs: Costs) -> list[dict[str, Any]]:
    """The priced periods as OCPI ChargingPeriods (mod_cdrs §ChargingPeriod), with tariff_id.

    Volumes are as measured, 4 decimals (OCPI types §number); the CDR's energy adds up.
    """
    return [_ocpi_period(period) for period in costs.periods]


def _ocpi_period(period: PricedPeriod) -> dict[str, Any]:
    usage = period.usage
    dimensions: list[tuple[CdrDimensionType, Decimal]] = []
    if usage.is_reservation:
        dimensions.append((CdrDimensionType.RESERVATION_TIME, usage.reservation_h))
    else:
        dimensions.append((CdrDimensionType.ENERGY, usage.energy_kwh))
        if usage.time_h > 0 or usage.parking_h == 0:
            dimensions.append((CdrDimensionType.TIME, usage.time_h))
        if usage.parking_h > 0:
            dimensions.append((CdrDimensionType.PARKING_TIME, usage.parking_h))
    for kind, value in (
        (CdrDimensionType.MAX_POWER, usage.max_power_kw),
        (CdrDimensionType.MIN_POWER, usage.min_power_kw),
        (CdrDimensionType.MAX_CURRENT, usage.max_current_a),
        (CdrDimensionType.MIN_CURRENT, usage.min_current_a),
    ):
        if value is not None:
            dimensions.append((kind, value))
    return {
        "start_date_time": usage.start,
        "dimensions": [
            {"type": kind, "volume": round_number(volume)} for kind, volume in dimensions
        ],
        "tariff_id": period.tariff_id,
    }


_USAGE_FIELDS = {
    CdrDimensionType.ENERGY: "energy_kwh",
    CdrDimensionType.TIME: "time_h",
    CdrDimensionType.PARKING_TIME: "parking_h",
    CdrDimensionType.RESERVATION_TIME: "reservation_h",
    CdrDimensionType.MIN_POWER: "min_power_kw",
    CdrDimensionType.MAX_POWER: "max_power_kw",
    CdrDimensionType.MIN_CURRENT: "min_current_a",
    CdrDimensionType.MAX_CURRENT: "max_current_a",
}


def usage_from_ocpi(periods: Iterable[Mapping[str, Any]]) -> list[UsagePeriod]:
    """UsagePeriods from OCPI ChargingPeriods (a validated CDR's or Session's, JSON form).

    Dimensions that do not price (CURRENT, POWER, STATE_OF_CHARGE...) are left out.
    """
    usage = []
    for period in periods:
        values: dict[str, Decimal] = {}
        for dimension in period["dimensions"]:
            name = _USAGE_FIELDS.get(CdrDimensionType(dimension["type"]))
            if name is not None:
                values[name] = _number(dimension["volume"])
        start = _datetime(period["start_date_time"])
        assert start is not None
        usage.append(UsagePeriod(start=start, **values))
    return usage


# --- a priced session, for the event builders ------------------------------------------------


@dataclass(frozen=True)
class PricedSession:
    """A session priced with the tariff version it started with.

    `tariff` is that version's OCPI Tariff object. What its energy cost to buy is not
    part of it: a session without a tariff is bought too (csms.core.rates).
    """

    tariff: dict[str, Any]
    costs: Costs

    @property
    def tariff_id(self) -> str:
        return str(self.tariff["id"])


def cdr_parts(priced: PricedSession) -> PricedCdrParts:
    """The parts a tariff adds to an OCPI CDR (csms.core.ocpi.build_cdr)."""
    lines = {name: priced.costs.line(name) for name in _CDR_LINES}
    if CostLine.RESERVATION in priced.costs.lines:
        lines[CostLine.RESERVATION] = priced.costs.lines[CostLine.RESERVATION]
    return PricedCdrParts(
        tariffs=[priced.tariff],
        charging_periods=ocpi_charging_periods(priced.costs),
        cost_lines=lines,
        total_parking_h=priced.costs.total_parking_h,
    )


_CDR_LINES = (CostLine.FIXED, CostLine.ENERGY, CostLine.TIME, CostLine.PARKING)


def cost_summary(priced: PricedSession | None, *, currency: str) -> dict[str, Any]:
    """`cost` of the events: `{currency, exclVat, inclVat}` (zero without a tariff)."""
    if priced is None:
        return {"currency": currency, "exclVat": ZERO, "inclVat": ZERO}
    total = priced.costs.total
    return {"currency": priced.costs.currency, "exclVat": total.excl_vat, "inclVat": total.incl_vat}
