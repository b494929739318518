"""Meter values: one sampled value with its defaults applied, energy registers read in Wh.

`csms/ocpp16/convert.py` makes `Sample`s from OCPP MeterValue[] payloads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

ENERGY_IMPORT_REGISTER = "Energy.Active.Import.Register"
# No charger's register reaches a terawatt-hour: a bigger reading (1e30 kWh) is unreadable,
# kept as sent and counted for nothing, like 1e400 or -inf (issue 13, docs/ocpp.md).
MAX_REGISTER_WH = 1e12


@dataclass(frozen=True)
class Sample:
    """One sampled value with the defaults of OCPP 1.6 §7.45 SampledValue filled in."""

    timestamp: datetime
    value: str
    measurand: str
    unit: str
    context: str
    location: str
    phase: str
    format: str
    flags: tuple[str, ...] = ()


def register_wh(sample: Sample) -> float | None:
    """An energy register in Wh, or None when the sample is not a readable import register."""
    if sample.measurand != ENERGY_IMPORT_REGISTER or sample.format != "Raw":
        return None
    if sample.phase not in ("", "N") and not sample.phase.startswith("L"):
        return None
    try:
        number = float(sample.value)
    except ValueError:
        return None
    if sample.unit == "kWh":
        number *= 1000.0
    elif sample.unit not in ("Wh", ""):
        return None
    return number if readable_wh(number) else None


def readable_wh(number: float) -> bool:
    """Whether a register reading in Wh is a number a meter can show (finite, < 1 TWh)."""
    return math.isfinite(number) and abs(number) < MAX_REGISTER_WH


def latest_register(samples: Iterable[Sample]) -> tuple[datetime, float] | None:
    """The newest total (phase-less) import register reading: its time and value in Wh."""
    best: tuple[datetime, float] | None = None
    for sample in samples:
        if sample.phase:
            continue
        wh = register_wh(sample)
        if wh is not None and (best is None or sample.timestamp >= best[0]):
            best = (sample.timestamp, wh)
    return best
