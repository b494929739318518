"""A session's charging periods from its meter values and its connector's status history.

Pure. OCPI mod_cdrs §CDR Object, *ChargingPeriod*: "A CPO SHALL at least start (and add)
a ChargingPeriod every moment/event that has relevance for the total costs", for example
"the moment the charging power goes over 32A". So a period starts:

- at the session start, and where the connector stops or resumes charging: time connected
  but not charging is PARKING_TIME: the connector is Finishing, or SuspendedEV/SuspendedEVSE
  while no energy flows (OCPP 1.6 §7.7 ChargePointStatus);
- where measured power or current crosses a limit some tariff element names (`limits`).

The cost engine then cuts these periods further where a time, duration or kWh restriction
changes its verdict (csms.core.tariffs). Energy between two register readings is spread
over the time between them in which the connector could charge (docs/tariffs.md).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from csms.core.meter import Sample
from csms.core.money import ZERO
from csms.core.session import (
    CURRENT_UNITS_A,
    POWER_UNITS_KW,
    WH_PER_KWH,
    import_register_wh,
    phase_totals,
)
from csms.core.tariffs import SECONDS_PER_HOUR, Tariff, UsagePeriod

# OCPP 1.6 §7.7: Finishing is "no longer charging"; Suspended* may still be plugged in.
_FINISHING = "Finishing"
_SUSPENDED = frozenset({"SuspendedEV", "SuspendedEVSE"})
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Limits:
    """The power (kW) and current (A) values at which some tariff element changes."""

    power_kw: tuple[Decimal, ...] = ()
    current_a: tuple[Decimal, ...] = ()


def limits_of(tariff: Tariff) -> Limits:
    """Every min/max power and current a restriction of the tariff names, sorted."""
    power: set[Decimal] = set()
    current: set[Decimal] = set()
    for element in tariff.elements:
        rules = element.restrictions
        power.update(v for v in (rules.min_power, rules.max_power) if v is not None)
        current.update(v for v in (rules.min_current, rules.max_current) if v is not None)
    return Limits(power_kw=tuple(sorted(power)), current_a=tuple(sorted(current)))


@dataclass(slots=True)
class _Segment:
    start: datetime
    end: datetime
    status: str | None
    energy_wh: Decimal = ZERO
    power: tuple[Decimal, Decimal] | None = None
    current: tuple[Decimal, Decimal] | None = None
    # Computed once: every step below reads it (it was a property, recomputed per read).
    seconds: Decimal = field(init=False)

    def __post_init__(self) -> None:
        self.seconds = Decimal((self.end - self.start) // _MICROSECOND) / 1_000_000

    @property
    def can_charge(self) -> bool:
        return self.status not in _SUSPENDED and self.status != _FINISHING

    @property
    def parking(self) -> bool:
        if self.status == _FINISHING:
            return True
        return self.status in _SUSPENDED and self.energy_wh == 0


def _readings(
    *,
    start: datetime,
    end: datetime,
    meter_start_wh: int,
    meter_stop_wh: int | None,
    samples: Sequence[Sample],
) -> list[tuple[datetime, Decimal]]:
    readings = [(start, Decimal(meter_start_wh))]
    readings += sorted(
        (
            (sample.timestamp, wh)
            for sample in samples
            if start < sample.timestamp < end and (wh := import_register_wh(sample)) is not None
        ),
        key=lambda reading: reading[0],
    )
    last = [
        (s.timestamp, wh)
        for s in samples
        if s.timestamp == end and (wh := import_register_wh(s)) is not None
    ]
    if meter_stop_wh is not None:
        # Errata §3.91: start and stop meter values are never dropped; meterStop wins.
        readings.append((end, Decimal(meter_stop_wh)))
    elif last:
        readings.append(last[-1])
    return readings


def _status_at(
    statuses: Sequence[tuple[datetime, str]], times: list[datetime], when: datetime
) -> str | None:
    """The status in force at `when`; `times`: the statuses' times, bisected (in order)."""
    index = bisect_right(times, when) - 1
    return statuses[index][1] if index >= 0 else None


class _Observations:
    """A measurand's (time, value) readings in time order, with their times for bisecting."""

    def __init__(self, observations: list[tuple[datetime, Decimal]]) -> None:
        self.times = [at for at, _ in observations]
        self.values = [value for _, value in observations]

    def observed(self, start: datetime, end: datetime) -> tuple[Decimal, Decimal] | None:
        """Min and max of what was measured in (start, end]; else the last value before it."""
        first = bisect_right(self.times, start)
        inside = self.values[first : bisect_right(self.times, end, lo=first)]
        if inside:
            return min(inside), max(inside)
        return (self.values[first - 1],) * 2 if first else None


def usage_periods(
    *,
    start: datetime,
    end: datetime,
    meter_start_wh: int,
    meter_stop_wh: int | None,
    samples: Sequence[Sample],
    statuses: Sequence[tuple[datetime, str]] = (),
    limits: Limits = Limits(),
) -> list[UsagePeriod]:
    """The session's periods: charging or parking, split where power or current cross a limit.

    Args:
        start, end: the session's start and its stop (or, while it runs, the last reading).
        meter_start_wh, meter_stop_wh: the registers of StartTransaction and StopTransaction.
        samples: the transaction's sampled values (energy registers, power, current).
        statuses: (time, OCPP status) of the connector, in time order, including the last
            one before the start; none known means charging all along.
        limits: where a tariff element changes with power or current (limits_of).
    """
    end = max(end, start)
    statuses = sorted(statuses, key=lambda change: change[0])
    readings = _readings(
        start=start,
        end=end,
        meter_start_wh=meter_start_wh,
        meter_stop_wh=meter_stop_wh,
        samples=samples,
    )
    cuts = (
        {start, end} | {at for at, _ in readings} | {at for at, _ in statuses if start < at < end}
    )
    ordered = sorted(cut for cut in cuts if start <= cut <= end)
    times = [at for at, _ in statuses]
    segments = [
        _Segment(start=a, end=b, status=_status_at(statuses, times, a))
        for a, b in pairwise(ordered)
    ] or [_Segment(start=start, end=end, status=_status_at(statuses, times, start))]
    _spread_energy(segments, readings)
    power = _Observations(
        phase_totals(samples, measurand="Power.Active.Import", units=POWER_UNITS_KW)
    )
    current = _Observations(
        phase_totals(samples, measurand="Current.Import", units=CURRENT_UNITS_A)
    )
    for segment in segments:
        segment.power = power.observed(segment.start, segment.end)
        segment.current = current.observed(segment.start, segment.end)
    return _periods(segments, limits)


def _spread_energy(segments: list[_Segment], readings: list[tuple[datetime, Decimal]]) -> None:
    # Segments are in time order and every reading is a cut between two of them, so those
    # between two readings are a slice found by bisecting their starts.
    starts = [s.start for s in segments]
    for (begin, before), (finish, after) in pairwise(readings):
        inside = [
            s
            for s in segments[bisect_left(starts, begin) : bisect_right(starts, finish)]
            if s.end <= finish
        ]
        if not inside:
            continue
        charging = [s for s in inside if s.can_charge] or inside
        seconds = sum((s.seconds for s in charging), ZERO)
        delta = after - before
        for segment in charging:
            share = segment.seconds / seconds if seconds else Decimal(1) / len(charging)
            segment.energy_wh += delta * share


def _band(value: tuple[Decimal, Decimal] | None, limits: tuple[Decimal, ...]) -> int | None:
    return None if value is None or not limits else bisect_right(limits, value[1])


def _periods(segments: list[_Segment], limits: Limits) -> list[UsagePeriod]:
    """Consecutive segments alike (parking or not, power and current band) as one period."""
    periods: list[UsagePeriod] = []
    run: list[_Segment] = []
    key: tuple[object, ...] | None = None
    for segment in segments:
        this = (
            segment.parking,
            _band(segment.power, limits.power_kw),
            _band(segment.current, limits.current_a),
        )
        if run and this != key:
            periods.append(_merged(run))
            run = []
        run.append(segment)
        key = this
    if run:
        periods.append(_merged(run))
    return periods


def _merged(run: list[_Segment]) -> UsagePeriod:
    """One period of segments alike, summed in their order (as one period at a time was)."""
    first, parking = run[0], run[0].parking
    hours = first.seconds / SECONDS_PER_HOUR
    energy_kwh = first.energy_wh / WH_PER_KWH
    time_h = ZERO if parking else hours
    parking_h = hours if parking else ZERO
    low_power = None if first.power is None else first.power[0]
    high_power = None if first.power is None else first.power[1]
    low_current = None if first.current is None else first.current[0]
    high_current = None if first.current is None else first.current[1]
    for segment in run[1:]:
        hours = segment.seconds / SECONDS_PER_HOUR
        energy_kwh += segment.energy_wh / WH_PER_KWH
        time_h += ZERO if parking else hours
        parking_h += hours if parking else ZERO
        low_power = _low(low_power, segment.power)
        high_power = _high(high_power, segment.power)
        low_current = _low(low_current, segment.current)
        high_current = _high(high_current, segment.current)
    return UsagePeriod(
        start=first.start,
        energy_kwh=energy_kwh,
        time_h=time_h,
        parking_h=parking_h,
        min_power_kw=low_power,
        max_power_kw=high_power,
        min_current_a=low_current,
        max_current_a=high_current,
    )


def _low(known: Decimal | None, seen: tuple[Decimal, Decimal] | None) -> Decimal | None:
    if seen is None:
        return known
    return seen[0] if known is None else min(known, seen[0])


def _high(known: Decimal | None, seen: tuple[Decimal, Decimal] | None) -> Decimal | None:
    if seen is None:
        return known
    return seen[1] if known is None else max(known, seen[1])
