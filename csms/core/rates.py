"""Electricity purchase prices: what a session's energy cost to buy, and so its margin.

Pure. A rate is a time-of-use table (local times of day, optionally by weekday) and/or a
series of priced intervals uploaded through the API (a day-ahead market feed); where an
uploaded interval covers a moment it wins over the table (docs/tariffs.md, "Electricity
rates"). A period's energy is spread evenly over its time, as the cost engine does.

Which rate a session is bought at: the most specific that exists, a circuit's over a site's
(`rate_candidates`, `choose_rate`; docs/tariffs.md, "Which rate a session is bought at").
Every finished session is bought, with a tariff or without; its margin is what it was sold
for excl. VAT (nothing without a tariff) minus that (`session_purchase`, `margin`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import TypeVar

from csms.core.money import ZERO, round_money
from csms.core.ocpi import DayOfWeek
from csms.core.tariffs import UsagePeriod

_WEEKDAYS = tuple(DayOfWeek)
_MIDNIGHT = time(0, 0)
_R = TypeVar("_R")


class RateScope(StrEnum):
    """What a rate prices: a site (an OCPI Location) or a circuit of the load balancer."""

    LOCATION = "location"
    CIRCUIT = "circuit"


# A rate's place: (scope, the location or circuit id).
RatePlace = tuple[RateScope, str]


def rate_candidates(*, circuits: Sequence[str], location_id: str | None) -> list[RatePlace]:
    """Where a session's purchase price is looked up, most specific first.

    Args:
        circuits: the connector's circuit at the session start, then the circuits above it,
            nearest first (empty: the connector is on no circuit).
        location_id: the charger's site, if it has one.
    """
    found = [(RateScope.CIRCUIT, circuit_id) for circuit_id in circuits]
    if location_id is not None:
        found.append((RateScope.LOCATION, location_id))
    return found


def choose_rate(candidates: Sequence[RatePlace], rates: Mapping[RatePlace, _R]) -> _R | None:
    """The rate of the first candidate that has one (a circuit's wins over its site's)."""
    for place in candidates:
        if place in rates:
            return rates[place]
    return None


@dataclass(frozen=True)
class TimeOfUse:
    """A price per kWh from `start` to `end` local time (00:00 as end: midnight; an end
    before the start wraps past midnight), on `days` (none: every day)."""

    start: time
    end: time
    price: Decimal
    days: frozenset[DayOfWeek] = frozenset()

    def covers(self, local: datetime) -> bool:
        if self.days and _WEEKDAYS[local.weekday()] not in self.days:
            return False
        now = local.time().replace(tzinfo=None)
        if self.end == _MIDNIGHT or self.end == self.start:
            return now >= self.start
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


@dataclass(frozen=True)
class PricePoint:
    """An uploaded interval [start, end) at a price per kWh."""

    start: datetime
    end: datetime
    price: Decimal


@dataclass(frozen=True)
class ElectricityRate:
    currency: str
    zone: tzinfo
    time_of_use: tuple[TimeOfUse, ...] = ()
    points: tuple[PricePoint, ...] = ()

    def price_at(self, when: datetime) -> Decimal | None:
        """The price per kWh at `when`: an uploaded interval, else the time-of-use table."""
        starts = [point.start for point in self.points]
        index = bisect_right(starts, when) - 1
        if index >= 0 and when < self.points[index].end:
            return self.points[index].price
        local = when.astimezone(self.zone)
        for window in self.time_of_use:
            if window.covers(local):
                return window.price
        return None


def _cuts(rate: ElectricityRate, start: datetime, end: datetime) -> list[datetime]:
    found = {p.start for p in rate.points} | {p.end for p in rate.points}
    times = {_MIDNIGHT} | {w.start for w in rate.time_of_use} | {w.end for w in rate.time_of_use}
    day = start.astimezone(rate.zone).date() - timedelta(days=1)
    while day <= end.astimezone(rate.zone).date() + timedelta(days=1):
        for moment in times:
            found.add(datetime.combine(day, moment, tzinfo=rate.zone).astimezone(UTC))
        day += timedelta(days=1)
    return sorted(cut for cut in found if start < cut < end)


def purchase_cost(
    rate: ElectricityRate, periods: Sequence[UsagePeriod], *, end: datetime
) -> Decimal:
    """What the periods' energy cost to buy, rounded to the rate's currency.

    Energy at a moment with no known price costs nothing here (the API shows which
    sessions a rate did not cover by their purchase cost).
    """
    ordered = sorted(periods, key=lambda period: period.start)
    total = ZERO
    for index, period in enumerate(ordered):
        finish = ordered[index + 1].start if index + 1 < len(ordered) else end
        if period.energy_kwh == 0:
            continue
        if finish <= period.start:
            price = rate.price_at(period.start)
            total += period.energy_kwh * (price or ZERO)
            continue
        length = Decimal((finish - period.start) // timedelta(microseconds=1))
        bounds = [period.start, *_cuts(rate, period.start, finish), finish]
        for begin, stop in pairwise(bounds):
            share = Decimal((stop - begin) // timedelta(microseconds=1)) / length
            price = rate.price_at(begin)
            total += period.energy_kwh * share * (price or ZERO)
    return round_money(total, rate.currency)


def session_purchase(
    rate: ElectricityRate | None,
    periods: Sequence[UsagePeriod],
    *,
    end: datetime,
    currency: str,
) -> Decimal | None:
    """What a finished session's energy cost to buy, in the session's `currency`.

    None without a rate, or when the rate is in another currency: csms converts no money,
    and a purchase cost in one currency beside a revenue in another would make a margin
    of neither (docs/tariffs.md, "Purchase cost and margin").
    """
    if rate is None or rate.currency != currency:
        return None
    return purchase_cost(rate, periods, end=end)


def margin(revenue_excl_vat: Decimal | None, purchase: Decimal) -> Decimal:
    """The margin of a session bought for `purchase`: what it was sold for excl. VAT (None:
    it has no tariff, nothing was sold) minus that.

    Both amounts are rounded to the same currency's minor unit, so the margin is exact.
    """
    return (revenue_excl_vat or ZERO) - purchase
