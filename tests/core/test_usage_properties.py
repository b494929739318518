"""`usage_periods` against the implementation it replaced (kept here), on generated
sessions: the same periods, Decimal for Decimal (hypothesis)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.meter import Sample
from csms.core.money import ZERO
from csms.core.session import (
    CURRENT_UNITS_A,
    POWER_UNITS_KW,
    WH_PER_KWH,
    import_register_wh,
    phase_totals,
)
from csms.core.tariffs import SECONDS_PER_HOUR, UsagePeriod
from csms.core.usage import Limits, usage_periods

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_FINISHING = "Finishing"
_SUSPENDED = frozenset({"SuspendedEV", "SuspendedEVSE"})
STATUSES = ["Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Available"]
PHASES = ["", "", "L1", "L2", "L3", "L1-N", "L1-L2", "N"]


# -- the implementation before 2026-12-07 (scans per segment, a UsagePeriod per merge) ---


@dataclass
class _OldSegment:
    start: datetime
    end: datetime
    status: str | None
    energy_wh: Decimal = ZERO
    power: tuple[Decimal, Decimal] | None = None
    current: tuple[Decimal, Decimal] | None = None

    @property
    def seconds(self) -> Decimal:
        return Decimal((self.end - self.start) // timedelta(microseconds=1)) / 1_000_000

    @property
    def can_charge(self) -> bool:
        return self.status not in _SUSPENDED and self.status != _FINISHING

    @property
    def parking(self) -> bool:
        if self.status == _FINISHING:
            return True
        return self.status in _SUSPENDED and self.energy_wh == 0


def _old_readings(
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
        readings.append((end, Decimal(meter_stop_wh)))
    elif last:
        readings.append(last[-1])
    return readings


def _old_status_at(statuses: Sequence[tuple[datetime, str]], when: datetime) -> str | None:
    index = bisect_right([at for at, _ in statuses], when) - 1
    return statuses[index][1] if index >= 0 else None


def _old_observed(
    observations: list[tuple[datetime, Decimal]], start: datetime, end: datetime
) -> tuple[Decimal, Decimal] | None:
    inside = [value for at, value in observations if start < at <= end]
    if inside:
        return min(inside), max(inside)
    before = [value for at, value in observations if at <= start]
    return (before[-1], before[-1]) if before else None


def old_usage_periods(
    *,
    start: datetime,
    end: datetime,
    meter_start_wh: int,
    meter_stop_wh: int | None,
    samples: Sequence[Sample],
    statuses: Sequence[tuple[datetime, str]] = (),
    limits: Limits,
) -> list[UsagePeriod]:
    end = max(end, start)
    statuses = sorted(statuses, key=lambda change: change[0])
    readings = _old_readings(start, end, meter_start_wh, meter_stop_wh, samples)
    cuts = (
        {start, end} | {at for at, _ in readings} | {at for at, _ in statuses if start < at < end}
    )
    ordered = sorted(cut for cut in cuts if start <= cut <= end)
    segments = [
        _OldSegment(start=a, end=b, status=_old_status_at(statuses, a))
        for a, b in pairwise(ordered)
    ] or [_OldSegment(start=start, end=end, status=_old_status_at(statuses, start))]
    _old_spread_energy(segments, readings)
    power = phase_totals(samples, measurand="Power.Active.Import", units=POWER_UNITS_KW)
    current = phase_totals(samples, measurand="Current.Import", units=CURRENT_UNITS_A)
    for segment in segments:
        segment.power = _old_observed(power, segment.start, segment.end)
        segment.current = _old_observed(current, segment.start, segment.end)
    return _old_periods(segments, limits)


def _old_spread_energy(
    segments: list[_OldSegment], readings: list[tuple[datetime, Decimal]]
) -> None:
    for (begin, before), (finish, after) in pairwise(readings):
        inside = [s for s in segments if begin <= s.start and s.end <= finish]
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


def _old_periods(segments: list[_OldSegment], limits: Limits) -> list[UsagePeriod]:
    periods: list[UsagePeriod] = []
    key: tuple[object, ...] | None = None
    for segment in segments:
        hours = segment.seconds / SECONDS_PER_HOUR
        this = (
            segment.parking,
            _band(segment.power, limits.power_kw),
            _band(segment.current, limits.current_a),
        )
        if periods and this == key:
            last = periods[-1]
            periods[-1] = UsagePeriod(
                start=last.start,
                energy_kwh=last.energy_kwh + segment.energy_wh / WH_PER_KWH,
                time_h=last.time_h + (ZERO if segment.parking else hours),
                parking_h=last.parking_h + (hours if segment.parking else ZERO),
                min_power_kw=_low(last.min_power_kw, segment.power),
                max_power_kw=_high(last.max_power_kw, segment.power),
                min_current_a=_low(last.min_current_a, segment.current),
                max_current_a=_high(last.max_current_a, segment.current),
            )
        else:
            periods.append(
                UsagePeriod(
                    start=segment.start,
                    energy_kwh=segment.energy_wh / WH_PER_KWH,
                    time_h=ZERO if segment.parking else hours,
                    parking_h=hours if segment.parking else ZERO,
                    min_power_kw=None if segment.power is None else segment.power[0],
                    max_power_kw=None if segment.power is None else segment.power[1],
                    min_current_a=None if segment.current is None else segment.current[0],
                    max_current_a=None if segment.current is None else segment.current[1],
                )
            )
        key = this
    return periods


def _low(known: Decimal | None, seen: tuple[Decimal, Decimal] | None) -> Decimal | None:
    if seen is None:
        return known
    return seen[0] if known is None else min(known, seen[0])


def _high(known: Decimal | None, seen: tuple[Decimal, Decimal] | None) -> Decimal | None:
    if seen is None:
        return known
    return seen[1] if known is None else max(known, seen[1])


# -- generated sessions ------------------------------------------------------------------

# Seconds from T0, some before the start or after the stop, some shared (same timestamp).
offsets = st.integers(min_value=-120, max_value=7_200)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    measurand, unit, value = draw(
        st.sampled_from(
            [
                ("Energy.Active.Import.Register", "Wh", st.integers(0, 100_000).map(str)),
                ("Energy.Active.Import.Register", "kWh", st.decimals(0, 100, places=3).map(str)),
                ("Power.Active.Import", "W", st.integers(0, 150_000).map(str)),
                ("Power.Active.Import", "kW", st.decimals(0, 150, places=2).map(str)),
                ("Current.Import", "A", st.decimals(0, 64, places=1).map(str)),
                ("Voltage", "V", st.just("230")),
            ]
        )
    )
    return Sample(
        timestamp=T0
        + timedelta(seconds=draw(offsets), microseconds=draw(st.sampled_from([0, 500]))),
        value=draw(value),
        measurand=measurand,
        unit=unit,
        context="Sample.Periodic",
        location="Outlet",
        phase=draw(st.sampled_from(PHASES)),
        format="Raw",
    )


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, object]:
    end = T0 + timedelta(seconds=draw(st.integers(min_value=-60, max_value=7_200)))
    statuses = draw(
        st.lists(
            st.tuples(offsets.map(lambda s: T0 + timedelta(seconds=s)), st.sampled_from(STATUSES)),
            max_size=8,
        )
    )
    limit_values = st.lists(st.decimals(0, 150, places=1), max_size=3, unique=True)
    return {
        "start": T0,
        "end": end,
        "meter_start_wh": draw(st.integers(0, 50_000)),
        "meter_stop_wh": draw(st.one_of(st.none(), st.integers(0, 150_000))),
        "samples": draw(st.lists(samples(), max_size=30)),
        "statuses": statuses,
        "limits": Limits(
            power_kw=tuple(sorted(draw(limit_values))),
            current_a=tuple(sorted(draw(limit_values))),
        ),
    }


def _exact(periods: list[UsagePeriod]) -> list[tuple[str, ...]]:
    # Decimal equality ignores the exponent (1.0 == 1); the strings do not.
    return [tuple(str(value) for value in vars(p).values()) for p in periods]


@settings(max_examples=400, deadline=None)
@given(sessions())
def test_usage_periods_are_those_of_the_former_implementation(
    session: dict[str, object],
) -> None:
    new = usage_periods(**session)  # type: ignore[arg-type]
    old = old_usage_periods(**session)  # type: ignore[arg-type]
    assert new == old
    assert _exact(new) == _exact(old)
