"""Numbers, meter registers and charging periods of an OCPI Session or CDR."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from csms.core.meter import Sample
from csms.core.ocpi.enums import SESSION_ONLY_DIMENSIONS, CdrDimensionType
from csms.core.session import (
    CURRENT_UNITS_A,
    POWER_UNITS_KW,
    WH_PER_KWH,
    SessionFacts,
    import_register_wh,
    parse_decimal,
    phase_totals,
)

# --- numbers ---------------------------------------------------------------------------------

# types §number: "Unless mentioned otherwise, numbers use 4 decimals".
_FOUR_PLACES = Decimal("0.0001")
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
DEFAULT_PERIOD = timedelta(minutes=15)
"""Charging period length. mod_sessions §Session Object: one per minute is "too much" for
a 3 h AC session, one per 30 min "not enough" for a 30 min DC session."""
MAX_CHARGING_PERIODS = 672
"""One week of DEFAULT_PERIOD. A longer session (a transaction forgotten for weeks, then
forced; a clock set mid-session, from 2000 to today) gets longer periods, whole multiples
of the length asked for, instead of hundreds of thousands of them in one event."""


def round_number(value: Decimal) -> Decimal:
    """An OCPI number: 4 decimals, half up."""
    return value.quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP)


def wh_to_kwh(wh: Decimal | int) -> Decimal:
    """Wh -> kWh, rounded to 4 decimals."""
    return round_number(Decimal(wh) / WH_PER_KWH)


def hours_between(start: datetime, end: datetime) -> Decimal:
    """The duration in hours, rounded to 4 decimals (CDR ``total_time``, ``TIME`` volumes)."""
    return round_number(
        Decimal((end - start) // timedelta(microseconds=1)) / _MICROSECONDS_PER_HOUR
    )


def _as_decimal(value: Decimal | int | float) -> Decimal:
    # str() first: Decimal(0.1) would carry the binary float's full expansion.
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- meter samples -> registers and charging periods -----------------------------------------

_POWER = "Power.Active.Import"
_CURRENT = "Current.Import"
_SOC = "SoC"


def session_energy_kwh(facts: SessionFacts) -> Decimal:
    """OCPI Session ``kwh``: (register - meterStart)/1000, from meterStop once stopped.

    The register is ``latest_register_wh``, else the newest register sample; with none,
    no energy is known yet and the answer is 0 (the Session starts with ``kwh = 0``).
    """
    if facts.meter_stop_wh is not None:
        return wh_to_kwh(facts.meter_stop_wh - facts.meter_start_wh)
    latest = _latest_register(facts)
    if latest is None:
        return wh_to_kwh(0)
    return wh_to_kwh(latest - facts.meter_start_wh)


def _latest_register(facts: SessionFacts) -> Decimal | None:
    if facts.latest_register_wh is not None:
        return _as_decimal(facts.latest_register_wh)
    readings = [
        (s.timestamp, wh) for s in facts.samples if (wh := import_register_wh(s)) is not None
    ]
    if not readings:
        return None
    return max(readings, key=lambda reading: reading[0])[1]


def _periods_end(facts: SessionFacts) -> datetime | None:
    if facts.stop is not None:
        return max(facts.stop, facts.start)
    times = [s.timestamp for s in facts.samples if s.timestamp >= facts.start]
    return max(times) if times else None


def _widened(period: timedelta, *, span: timedelta) -> timedelta:
    """`period`, or the least multiple of it that cuts `span` into MAX_CHARGING_PERIODS."""
    multiple = -(-span // (period * MAX_CHARGING_PERIODS))  # ceiling division
    return period * max(multiple, 1)


def _boundaries(start: datetime, end: datetime, period: timedelta) -> list[datetime]:
    # Boundaries are aligned to multiples of `period` since the epoch, so that quarter
    # hours (and therefore wall-clock tariff changes) start new periods.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bounds = [start]
    boundary = epoch + ((start - epoch) // period + 1) * period
    while boundary < end:
        bounds.append(boundary)
        boundary += period
    return bounds


class _Registers:
    """The energy register as a step function of time: the last reading at or before t."""

    def __init__(self, facts: SessionFacts, end: datetime) -> None:
        readings = [(facts.start, Decimal(facts.meter_start_wh))]
        readings += sorted(
            (
                (s.timestamp, wh)
                for s in facts.samples
                if facts.start <= s.timestamp <= end and (wh := import_register_wh(s)) is not None
            ),
            key=lambda reading: reading[0],
        )
        if facts.stop is not None and facts.meter_stop_wh is not None:
            # Errata §3.91: start and stop meter values are never dropped; meterStop wins.
            readings.append((end, Decimal(facts.meter_stop_wh)))
        self._times = [when for when, _ in readings]
        self._values = [wh for _, wh in readings]

    def at(self, when: datetime) -> Decimal:
        return self._values[max(bisect_right(self._times, when) - 1, 0)]


def _dimension(kind: CdrDimensionType, volume: Decimal) -> dict[str, Any]:
    return {"type": kind, "volume": round_number(volume)}


def _period_dimensions(
    samples: Sequence[Sample], *, energy_wh: Decimal, hours: Decimal
) -> list[dict[str, Any]]:
    dimensions = [
        {"type": CdrDimensionType.ENERGY, "volume": wh_to_kwh(energy_wh)},
        {"type": CdrDimensionType.TIME, "volume": hours},
    ]
    power = [kw for _, kw in phase_totals(samples, measurand=_POWER, units=POWER_UNITS_KW)]
    current = [a for _, a in phase_totals(samples, measurand=_CURRENT, units=CURRENT_UNITS_A)]
    if power:
        dimensions.append(_dimension(CdrDimensionType.MAX_POWER, max(power)))
        dimensions.append(_dimension(CdrDimensionType.MIN_POWER, min(power)))
    if current:
        dimensions.append(_dimension(CdrDimensionType.MAX_CURRENT, max(current)))
        dimensions.append(_dimension(CdrDimensionType.MIN_CURRENT, min(current)))
    if power:
        dimensions.append(_dimension(CdrDimensionType.POWER, sum(power, Decimal(0)) / len(power)))
    if current:
        dimensions.append(
            _dimension(CdrDimensionType.CURRENT, sum(current, Decimal(0)) / len(current))
        )
    soc = [
        (s.timestamp, number)
        for s in samples
        if s.measurand == _SOC
        and s.format == "Raw"
        and s.unit in ("Percent", "")
        and (number := parse_decimal(s.value)) is not None
    ]
    if soc:
        latest = max(soc, key=lambda reading: reading[0])[1]
        dimensions.append(_dimension(CdrDimensionType.STATE_OF_CHARGE, latest))
    return dimensions


def build_charging_periods(
    facts: SessionFacts, *, period: timedelta = DEFAULT_PERIOD, for_cdr: bool = False
) -> list[dict[str, Any]]:
    """OCPI ChargingPeriods (mod_cdrs §ChargingPeriod) from the transaction's samples.

    A period starts at the session start and at every ``period`` boundary (aligned to
    the epoch) before the end, which is the stop time or, while active, the newest
    sample. Each period carries ``ENERGY`` (Δ register, kWh; the periods add up to the
    session's energy) and ``TIME`` (hours), plus ``MAX_/MIN_POWER`` (kW) and
    ``MAX_/MIN_CURRENT`` (A, summed over phases) when sampled; Sessions also get the
    averages ``POWER`` and ``CURRENT`` and the last ``STATE_OF_CHARGE``. With
    ``for_cdr`` the Session-only dimensions are left out (SESSION_ONLY_DIMENSIONS).

    Status changes are not known here, so no ``PARKING_TIME`` periods are made. An
    active session with no samples yet has no periods (an empty list). A session longer
    than MAX_CHARGING_PERIODS periods gets longer ones (see there).
    """
    end = _periods_end(facts)
    if end is None:
        return []
    period = _widened(period, span=end - facts.start)
    bounds = _boundaries(facts.start, end, period)
    registers = _Registers(facts, end)
    periods: list[dict[str, Any]] = []
    for index, begin in enumerate(bounds):
        last = index == len(bounds) - 1
        finish = end if last else bounds[index + 1]
        inside = [
            s
            for s in facts.samples
            if begin <= s.timestamp < finish or (last and s.timestamp == finish)
        ]
        dimensions = _period_dimensions(
            inside,
            energy_wh=registers.at(finish) - registers.at(begin),
            hours=hours_between(begin, finish),
        )
        if for_cdr:
            dimensions = [d for d in dimensions if d["type"] not in SESSION_ONLY_DIMENSIONS]
        periods.append({"start_date_time": begin, "dimensions": dimensions})
    return periods
