"""The cost engine: a session's charging periods priced with an OCPI 2.2.1 Tariff, exactly.

Pure: a Tariff, the periods, the session's end and the Location's time zone in; the cost
lines and the priced periods out. The rules are OCPI 2.2.1 mod_tariffs §Tariff Object
and §TariffRestrictions, and mod_cdrs §CDR Object (*ChargingPeriod*, *step_size*); where
the spec's own examples disagree with each other, docs/tariffs.md says which rule we keep.

1. Each period is cut where a restriction can change its verdict: at every local time of
   day a restriction names and at local midnight (time, date and weekday restrictions),
   at the session durations a restriction names, and where the energy so far crosses a
   kWh limit. Inside a period, energy and time are spread evenly (docs/tariffs.md).
2. For each piece and each dimension (FLAT, ENERGY, TIME, PARKING_TIME), the first
   element with a price component of that dimension whose restrictions all hold is the
   one that applies (mod_tariffs §Tariff Object); with none, that dimension is free.
3. FLAT is charged once per session, by the first piece where a FLAT element applies.
4. step_size (mod_cdrs §step_size): once per session for ENERGY, and once for TIME and
   PARKING_TIME together, on the dimension of the last priced period: its total over the
   session is rounded up to the step of that period's price component.
5. VAT per component; amounts rounded as csms.core.money says; min_price/max_price bound
   the total, excl. and incl. VAT each on its own (mod_tariffs §Tariff Object, notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from itertools import pairwise

from csms.core.money import ZERO, round_money
from csms.core.ocpi import (
    DayOfWeek,
    PriceFacts,
    ReservationRestrictionType,
    TariffDimensionType,
)

HUNDRED = Decimal(100)
SECONDS_PER_HOUR = Decimal(3600)
WH_PER_KWH = Decimal(1000)
_WEEKDAYS = tuple(DayOfWeek)  # Monday first, as date.weekday() counts
_MIDNIGHT = time(0, 0)

# --- the tariff ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceComponent:
    """mod_tariffs §PriceComponent: `price` per unit excl. VAT; `vat` in percent or None."""

    type: TariffDimensionType
    price: Decimal
    step_size: int
    vat: Decimal | None = None


@dataclass(frozen=True)
class Restrictions:
    """mod_tariffs §TariffRestrictions; all of them must hold (logical AND)."""

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: frozenset[DayOfWeek] = frozenset()
    reservation: ReservationRestrictionType | None = None


@dataclass(frozen=True)
class TariffElement:
    """mod_tariffs §TariffElement."""

    components: tuple[PriceComponent, ...]
    restrictions: Restrictions = Restrictions()

    def component(self, dimension: TariffDimensionType) -> PriceComponent | None:
        return next((c for c in self.components if c.type is dimension), None)


@dataclass(frozen=True)
class Tariff:
    """mod_tariffs §Tariff Object, the parts that price a session."""

    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    min_price: PriceFacts | None = None
    max_price: PriceFacts | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None

    def valid_at(self, when: datetime) -> bool:
        """Whether the tariff is active at `when` (start inclusive, end exclusive)."""
        if self.start_date_time is not None and when < self.start_date_time:
            return False
        return self.end_date_time is None or when < self.end_date_time


# --- what was used ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UsagePeriod:
    """One charging period as measured (mod_cdrs §ChargingPeriod): it ends where the next
    begins, the last at the session's end. Volumes in the spec's units: kWh and hours.

    `reservation_h` > 0 makes it a reservation period (CdrDimensionType RESERVATION_TIME):
    priced only by elements with a `reservation` restriction. Power (kW) and current (A,
    summed over phases) are the period's extremes when measured.
    """

    start: datetime
    energy_kwh: Decimal = ZERO
    time_h: Decimal = ZERO
    parking_h: Decimal = ZERO
    reservation_h: Decimal = ZERO
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None

    @property
    def is_reservation(self) -> bool:
        return self.reservation_h > 0

    def scaled(self, fraction: Decimal, *, start: datetime) -> UsagePeriod:
        """The part of this period that is `fraction` of it, beginning at `start`."""
        return replace(
            self,
            start=start,
            energy_kwh=self.energy_kwh * fraction,
            time_h=self.time_h * fraction,
            parking_h=self.parking_h * fraction,
            reservation_h=self.reservation_h * fraction,
        )


# --- what it costs ---------------------------------------------------------------------------


class CostLine:
    """Names of the cost lines, as OCPI mod_cdrs §CDR Object spells their totals."""

    FIXED = "total_fixed_cost"
    ENERGY = "total_energy_cost"
    TIME = "total_time_cost"
    PARKING = "total_parking_cost"
    RESERVATION = "total_reservation_cost"


@dataclass(frozen=True)
class PricedPeriod:
    """A piece of a period with the element that priced each dimension and its cost.

    `volumes` are as measured (kWh or hours); `billed` adds what step_size rounded up.
    """

    usage: UsagePeriod
    tariff_id: str
    elements: Mapping[TariffDimensionType, int]
    billed: Mapping[TariffDimensionType, Decimal]
    cost: PriceFacts


@dataclass(frozen=True)
class Costs:
    """The cost fields of an OCPI CDR (mod_cdrs §CDR Object), each an OCPI Price."""

    currency: str
    total: PriceFacts
    lines: Mapping[str, PriceFacts]
    periods: tuple[PricedPeriod, ...] = ()
    total_parking_h: Decimal = ZERO

    def line(self, name: str) -> PriceFacts:
        return self.lines.get(name, PriceFacts(excl_vat=ZERO, incl_vat=ZERO))


# --- cutting periods where a restriction may change ------------------------------------------


def _local_cut_times(tariff: Tariff) -> list[time]:
    cuts = {_MIDNIGHT}
    for element in tariff.elements:
        for moment in (element.restrictions.start_time, element.restrictions.end_time):
            if moment is not None:
                cuts.add(moment)
    return sorted(cuts)


def _local_cuts(
    start: datetime, end: datetime, times: Sequence[time], zone: tzinfo
) -> list[datetime]:
    """The instants in (start, end) where the local clock shows one of `times`."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    found: list[datetime] = []
    day = first
    while day <= last:
        for moment in times:
            instant = datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)
            if start < instant < end:
                found.append(instant)
        day += timedelta(days=1)
    return found


def _duration_cuts(tariff: Tariff) -> list[int]:
    seconds = set()
    for element in tariff.elements:
        for limit in (element.restrictions.min_duration, element.restrictions.max_duration):
            if limit is not None:
                seconds.add(limit)
    return sorted(seconds)


def _energy_cuts(tariff: Tariff) -> list[Decimal]:
    limits = set()
    for element in tariff.elements:
        for limit in (element.restrictions.min_kwh, element.restrictions.max_kwh):
            if limit is not None:
                limits.add(limit)
    return sorted(limits)


def _fraction(part: timedelta, whole: timedelta) -> Decimal:
    return Decimal(part // timedelta(microseconds=1)) / Decimal(whole // timedelta(microseconds=1))


def _at_fraction(start: datetime, length: timedelta, fraction: Decimal) -> datetime:
    micros = Decimal(length // timedelta(microseconds=1)) * fraction
    return start + timedelta(microseconds=int(micros))


@dataclass(frozen=True)
class _Piece:
    usage: UsagePeriod
    end: datetime
    energy_before_kwh: Decimal
    source: int


def _cut(
    tariff: Tariff,
    periods: Sequence[UsagePeriod],
    *,
    end: datetime,
    session_start: datetime,
    zone: tzinfo,
) -> list[_Piece]:
    local_times = _local_cut_times(tariff)
    durations = _duration_cuts(tariff)
    kwh_limits = _energy_cuts(tariff)
    pieces: list[_Piece] = []
    energy = ZERO
    for index, period in enumerate(periods):
        finish = periods[index + 1].start if index + 1 < len(periods) else end
        finish = max(finish, period.start)
        length = finish - period.start
        fractions = {ZERO, Decimal(1)}
        if length > timedelta(0):
            for instant in _local_cuts(period.start, finish, local_times, zone):
                fractions.add(_fraction(instant - period.start, length))
            if not period.is_reservation:
                for seconds in durations:
                    instant = session_start + timedelta(seconds=seconds)
                    if period.start < instant < finish:
                        fractions.add(_fraction(instant - period.start, length))
        if period.energy_kwh > 0 and not period.is_reservation:
            for limit in kwh_limits:
                if energy < limit < energy + period.energy_kwh:
                    fractions.add((limit - energy) / period.energy_kwh)
        ordered = sorted(fractions)
        for begin, stop in pairwise(ordered):
            piece_start = _at_fraction(period.start, length, begin)
            piece_end = _at_fraction(period.start, length, stop) if stop < 1 else finish
            pieces.append(
                _Piece(
                    usage=period.scaled(stop - begin, start=piece_start),
                    end=piece_end,
                    energy_before_kwh=energy + period.energy_kwh * begin,
                    source=index,
                )
            )
        if not period.is_reservation:
            energy += period.energy_kwh
    return pieces


# --- which element applies -------------------------------------------------------------------


def _in_time_window(now: time, start: time | None, end: time | None) -> bool:
    """start_time inclusive, end_time exclusive; "If end_time < start_time then the period
    wraps around to the next day. To stop at end of the day use: 00:00"."""
    if start is None and end is None:
        return True
    begin = start or _MIDNIGHT
    if end is None or end == _MIDNIGHT or end == begin:
        return now >= begin
    if begin < end:
        return begin <= now < end
    return now >= begin or now < end


def _power_bounds(usage: UsagePeriod) -> tuple[Decimal | None, Decimal | None]:
    low, high = usage.min_power_kw, usage.max_power_kw
    if low is None and high is None and usage.time_h > 0:
        # Without power samples, the period's average charging power: energy / charging time.
        average = usage.energy_kwh / usage.time_h
        return average, average
    return (low if low is not None else high), (high if high is not None else low)


def _holds(
    rules: Restrictions,
    piece: _Piece,
    *,
    session_start: datetime,
    zone: tzinfo,
    reservation_expired: bool,
) -> bool:
    usage = piece.usage
    if rules.reservation is None:
        if usage.is_reservation:
            return False
    elif not usage.is_reservation or (
        rules.reservation is ReservationRestrictionType.RESERVATION_EXPIRES
        and not reservation_expired
    ):
        return False
    local = usage.start.astimezone(zone)
    if not _in_time_window(local.time().replace(tzinfo=None), rules.start_time, rules.end_time):
        return False
    if rules.start_date is not None and local.date() < rules.start_date:
        return False
    if rules.end_date is not None and local.date() >= rules.end_date:
        return False
    if rules.day_of_week and _WEEKDAYS[local.weekday()] not in rules.day_of_week:
        return False
    energy = piece.energy_before_kwh
    if rules.min_kwh is not None and energy < rules.min_kwh:
        return False
    if rules.max_kwh is not None and energy >= rules.max_kwh:
        return False
    elapsed = Decimal((usage.start - session_start) // timedelta(microseconds=1)) / 1_000_000
    if rules.min_duration is not None and elapsed < rules.min_duration:
        return False
    if rules.max_duration is not None and elapsed >= rules.max_duration:
        return False
    return _electrical_holds(rules, usage)


def _electrical_holds(rules: Restrictions, usage: UsagePeriod) -> bool:
    # "min_power: When the EV is charging with more than, or equal to, the defined amount of
    # power, this TariffElement is/becomes active"; max_*: "less than". Unknown: not active.
    low_power, high_power = _power_bounds(usage)
    if rules.min_power is not None and (low_power is None or low_power < rules.min_power):
        return False
    if rules.max_power is not None and (high_power is None or high_power >= rules.max_power):
        return False
    low_current = usage.min_current_a if usage.min_current_a is not None else usage.max_current_a
    high_current = usage.max_current_a if usage.max_current_a is not None else usage.min_current_a
    if rules.min_current is not None and (low_current is None or low_current < rules.min_current):
        return False
    return rules.max_current is None or (
        high_current is not None and high_current < rules.max_current
    )


_DIMENSIONS = (
    TariffDimensionType.FLAT,
    TariffDimensionType.ENERGY,
    TariffDimensionType.TIME,
    TariffDimensionType.PARKING_TIME,
)


def _volume(usage: UsagePeriod, dimension: TariffDimensionType) -> Decimal:
    if dimension is TariffDimensionType.ENERGY:
        return usage.energy_kwh
    if dimension is TariffDimensionType.TIME:
        return usage.reservation_h if usage.is_reservation else usage.time_h
    if dimension is TariffDimensionType.PARKING_TIME:
        return usage.parking_h
    return Decimal(1)


def _line(usage: UsagePeriod, dimension: TariffDimensionType) -> str:
    if usage.is_reservation:
        return CostLine.RESERVATION
    return {
        TariffDimensionType.FLAT: CostLine.FIXED,
        TariffDimensionType.ENERGY: CostLine.ENERGY,
        TariffDimensionType.TIME: CostLine.TIME,
        TariffDimensionType.PARKING_TIME: CostLine.PARKING,
    }[dimension]


# --- pricing ---------------------------------------------------------------------------------


@dataclass
class _Amount:
    """An exact running amount; incl. VAT becomes unknown once a priced part has no VAT."""

    excl: Decimal = ZERO
    incl: Decimal | None = ZERO

    def add(self, cost: Decimal, vat: Decimal | None) -> None:
        self.excl += cost
        if vat is None:
            # PriceComponent.vat: "If omitted, no VAT is applicable", so incl. is not known
            # (mod_tariffs, first hour free example) unless the amount is zero anyway.
            if cost != 0:
                self.incl = None
        elif self.incl is not None:
            self.incl += cost * (1 + vat / HUNDRED)


@dataclass
class _Pricing:
    pieces: list[_Piece]
    chosen: list[dict[TariffDimensionType, int]]
    billed: list[dict[TariffDimensionType, Decimal]] = field(default_factory=list)
    amounts: list[dict[str, _Amount]] = field(default_factory=list)


def price_session(
    tariff: Tariff,
    periods: Sequence[UsagePeriod],
    *,
    end: datetime,
    zone: tzinfo = UTC,
) -> Costs:
    """What a session costs under `tariff` (OCPI 2.2.1 mod_tariffs, mod_cdrs §step_size).

    Args:
        tariff: the tariff the session started with.
        periods: its charging periods in time order; each ends where the next starts.
        end: when the session ended (or, for a running session, now).
        zone: the Location's time zone, for time, date and weekday restrictions.

    Returns:
        The cost lines and the total, rounded as csms.core.money says, with min_price and
        max_price applied, and the periods as priced (cut where an element changes).
    """
    ordered = sorted(periods, key=lambda period: period.start)
    charging = [period for period in ordered if not period.is_reservation]
    session_start = charging[0].start if charging else (ordered[0].start if ordered else end)
    pieces = _cut(tariff, ordered, end=end, session_start=session_start, zone=zone)
    expired = bool(ordered) and not charging
    chosen = [
        {
            dimension: index
            for dimension in _DIMENSIONS
            if (
                index := _first_element(
                    tariff,
                    dimension,
                    piece,
                    session_start=session_start,
                    zone=zone,
                    expired=expired,
                )
            )
            is not None
        }
        for piece in pieces
    ]
    pricing = _Pricing(pieces=pieces, chosen=chosen)
    _bill(tariff, pricing)
    return _costs(tariff, pricing)


def _first_element(
    tariff: Tariff,
    dimension: TariffDimensionType,
    piece: _Piece,
    *,
    session_start: datetime,
    zone: tzinfo,
    expired: bool,
) -> int | None:
    for index, element in enumerate(tariff.elements):
        if element.component(dimension) is None:
            continue
        if _holds(
            element.restrictions,
            piece,
            session_start=session_start,
            zone=zone,
            reservation_expired=expired,
        ):
            return index
    return None


def _bill(tariff: Tariff, pricing: _Pricing) -> None:
    """Billed volume per piece and dimension: FLAT once, step_size on the last ones."""
    flat_done = {False: False, True: False}  # per kind: charging session, reservation
    for piece, chosen in zip(pricing.pieces, pricing.chosen, strict=True):
        billed: dict[TariffDimensionType, Decimal] = {}
        for dimension in chosen:
            if dimension is TariffDimensionType.FLAT:
                kind = piece.usage.is_reservation
                if flat_done[kind]:
                    continue
                flat_done[kind] = True
            billed[dimension] = _volume(piece.usage, dimension)
        pricing.billed.append(billed)
    for reservation in (False, True):
        _round_up_last(tariff, pricing, (TariffDimensionType.ENERGY,), reservation)
        _round_up_last(
            tariff,
            pricing,
            (TariffDimensionType.TIME, TariffDimensionType.PARKING_TIME),
            reservation,
        )


def _round_up_last(
    tariff: Tariff,
    pricing: _Pricing,
    dimensions: tuple[TariffDimensionType, ...],
    reservation: bool,
) -> None:
    """mod_cdrs §step_size: the step of the last priced period's component rounds up the
    session's total of that dimension; the difference is billed at that component's price."""
    last: tuple[int, TariffDimensionType] | None = None
    for index, (piece, billed) in enumerate(zip(pricing.pieces, pricing.billed, strict=True)):
        if piece.usage.is_reservation is not reservation:
            continue
        # Within one period, parking follows charging (docs/tariffs.md).
        for dimension in dimensions:
            if billed.get(dimension, ZERO) > 0:
                last = (index, dimension)
    if last is None:
        return
    index, dimension = last
    component = tariff.elements[pricing.chosen[index][dimension]].component(dimension)
    assert component is not None
    if component.step_size <= 0:
        return
    unit = WH_PER_KWH if dimension is TariffDimensionType.ENERGY else SECONDS_PER_HOUR
    total = sum(
        (
            billed.get(dimension, ZERO)
            for piece, billed in zip(pricing.pieces, pricing.billed, strict=True)
            if piece.usage.is_reservation is reservation
        ),
        ZERO,
    )
    steps = (total * unit / component.step_size).to_integral_value(rounding=ROUND_CEILING)
    extra = steps * component.step_size / unit - total
    if extra > 0:
        pricing.billed[index][dimension] += extra


def _costs(tariff: Tariff, pricing: _Pricing) -> Costs:
    currency = tariff.currency
    lines: dict[str, _Amount] = {}
    periods: list[PricedPeriod] = []
    for piece, chosen, billed in zip(pricing.pieces, pricing.chosen, pricing.billed, strict=True):
        amount = _Amount()
        for dimension, volume in billed.items():
            component = tariff.elements[chosen[dimension]].component(dimension)
            assert component is not None
            cost = volume * component.price
            amount.add(cost, component.vat)
            lines.setdefault(_line(piece.usage, dimension), _Amount()).add(cost, component.vat)
        periods.append(
            PricedPeriod(
                usage=piece.usage,
                tariff_id=tariff.id,
                elements=dict(chosen),
                billed=billed,
                cost=PriceFacts(excl_vat=amount.excl, incl_vat=amount.incl),
            )
        )
    for name in (CostLine.FIXED, CostLine.ENERGY, CostLine.TIME, CostLine.PARKING):
        lines.setdefault(name, _Amount())
    rounded = {
        name: PriceFacts(
            excl_vat=round_money(amount.excl, currency),
            incl_vat=None if amount.incl is None else round_money(amount.incl, currency),
        )
        for name, amount in lines.items()
    }
    exact = _sum(PriceFacts(excl_vat=a.excl, incl_vat=a.incl) for a in lines.values())
    total = _bounded(
        tariff,
        PriceFacts(
            excl_vat=round_money(exact.excl_vat, currency),
            incl_vat=None if exact.incl_vat is None else round_money(exact.incl_vat, currency),
        ),
    )
    return Costs(
        currency=currency,
        total=total,
        lines=rounded,
        periods=_merged(periods, [piece.source for piece in pricing.pieces]),
        total_parking_h=sum((piece.usage.parking_h for piece in pricing.pieces), ZERO),
    )


def _sum(prices: Iterable[PriceFacts]) -> PriceFacts:
    excl = ZERO
    incl: Decimal | None = ZERO
    for price in prices:
        excl += price.excl_vat
        incl = None if incl is None or price.incl_vat is None else incl + price.incl_vat
    return PriceFacts(excl_vat=excl, incl_vat=incl)


def _bounded(tariff: Tariff, total: PriceFacts) -> PriceFacts:
    """min_price and max_price: "they both apply", excl. and incl. VAT each on its own.

    A bound without incl_vat moves incl. VAT in proportion to excl. VAT (the same VAT
    share); with nothing to scale from, incl. VAT becomes unknown (docs/tariffs.md).
    """
    excl, incl = total.excl_vat, total.incl_vat
    for bound, pick in ((tariff.min_price, max), (tariff.max_price, min)):
        if bound is None:
            continue
        new_excl = pick(excl, bound.excl_vat)
        if bound.incl_vat is not None and incl is not None:
            incl = pick(incl, bound.incl_vat)
        elif new_excl != excl and incl is not None:
            incl = None if excl == 0 else round_money(incl * new_excl / excl, tariff.currency)
        excl = new_excl
    return PriceFacts(excl_vat=excl, incl_vat=incl)


def _merged(periods: list[PricedPeriod], sources: list[int]) -> tuple[PricedPeriod, ...]:
    """Pieces of one period that ended up priced alike become one period again."""
    merged: list[PricedPeriod] = []
    last_source: int | None = None
    for period, source in zip(periods, sources, strict=True):
        if merged and source == last_source and merged[-1].elements == period.elements:
            merged[-1] = _joined(merged[-1], period)
        else:
            merged.append(period)
        last_source = source
    return tuple(merged)


def _joined(first: PricedPeriod, second: PricedPeriod) -> PricedPeriod:
    a, b = first.usage, second.usage
    usage = replace(
        a,
        energy_kwh=a.energy_kwh + b.energy_kwh,
        time_h=a.time_h + b.time_h,
        parking_h=a.parking_h + b.parking_h,
        reservation_h=a.reservation_h + b.reservation_h,
    )
    billed = dict(first.billed)
    for dimension, volume in second.billed.items():
        billed[dimension] = billed.get(dimension, ZERO) + volume
    return PricedPeriod(
        usage=usage,
        tariff_id=first.tariff_id,
        elements=first.elements,
        billed=billed,
        cost=_sum((first.cost, second.cost)),
    )


# --- which tariff a session gets -------------------------------------------------------------


class TariffSource(StrEnum):
    """Where a session's tariff comes from, in the order they are tried (docs/tariffs.md)."""

    SUBSCRIPTION = "subscription"
    USER = "user"
    EVSE = "evse"
    LOCATION = "location"
    DEFAULT = "default"


RESOLUTION_ORDER = tuple(TariffSource)


def resolve_tariff(
    candidates: Iterable[tuple[TariffSource, Tariff]], *, at: datetime
) -> tuple[TariffSource, Tariff] | None:
    """The first candidate, in RESOLUTION_ORDER, whose tariff is valid at the session start.

    mod_tariffs §Tariff Object: start_date_time/end_date_time say when a tariff is active;
    one outside its window is passed over for the next candidate.
    """
    rank = {source: index for index, source in enumerate(RESOLUTION_ORDER)}
    for source, tariff in sorted(candidates, key=lambda candidate: rank[candidate[0]]):
        if tariff.valid_at(at):
            return source, tariff
    return None
