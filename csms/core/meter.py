"""Meter values: OCPP SampledValue defaults applied, energy registers read in Wh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.core.clock import parse_timestamp

ENERGY_IMPORT_REGISTER = "Energy.Active.Import.Register"


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


def samples_from_meter_values(
    meter_values: Iterable[Mapping[str, Any]], *, received: datetime
) -> list[Sample]:
    """Flatten OCPP MeterValue[] into samples, applying the spec's defaults."""
    samples: list[Sample] = []
    for meter_value in meter_values:
        when = parse_timestamp(meter_value.get("timestamp"), received=received)
        for sampled in meter_value.get("sampledValue", ()):
            measurand = sampled.get("measurand", ENERGY_IMPORT_REGISTER)
            samples.append(
                Sample(
                    timestamp=when.value,
                    value=str(sampled.get("value", "")),
                    measurand=measurand,
                    unit=sampled.get("unit", _default_unit(measurand)),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    phase=sampled.get("phase", ""),
                    format=sampled.get("format", "Raw"),
                    flags=when.flags,
                )
            )
    return samples


def _default_unit(measurand: str) -> str:
    # §7.45: unit defaults to Wh, which only makes sense for the energy measurands.
    return "Wh" if measurand.startswith("Energy") else ""


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
        return number * 1000.0
    if sample.unit in ("Wh", ""):
        return number
    return None


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
