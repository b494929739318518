"""Transaction rules: dedup keys, sanity flags and energy, decided without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.core.clock import ParsedTime

# OCPP 1.6 errata §3.18: transaction messages for a Start that never got through carry -1.
UNDELIVERED_TRANSACTION_ID = -1


class TransactionFlag(StrEnum):
    """Why a transaction deserves a second look; it is stored, never rejected (§4.8, §4.10)."""

    FUTURE_START = "future_start"
    UNPARSABLE_START = "unparsable_start"
    FUTURE_STOP = "future_stop"
    UNPARSABLE_STOP = "unparsable_stop"
    METER_REGRESSION = "meter_regression"
    STOP_BEFORE_START = "stop_before_start"
    IMPLICITLY_ENDED = "implicitly_ended"
    ORPHAN_STOP = "orphan_stop"
    FORCED_STOP = "forced_stop"
    CDR_CREATED = "cdr_created"


IMPLICIT_END_REASON = "Other"
# Not an OCPP Reason: the operator ended the transaction in our data, whatever the charger did.
FORCED_STOP_REASON = "Forced"


@dataclass(frozen=True)
class StartKey:
    """What makes two StartTransaction.req the same one (contract: 'the same StartTransaction')."""

    charge_point_id: str
    connector_id: int
    id_tag: str
    timestamp: datetime
    meter_start: int


def start_flags(started: ParsedTime) -> list[TransactionFlag]:
    flags: list[TransactionFlag] = []
    if started.unparsable:
        flags.append(TransactionFlag.UNPARSABLE_START)
    if started.future:
        flags.append(TransactionFlag.FUTURE_START)
    return flags


def stop_flags(
    *, meter_start: int, meter_stop: int, started_at: datetime | None, stopped: ParsedTime
) -> list[TransactionFlag]:
    """Sanity checks on a stop; OCPP 1.6 §4.10: they never stop us answering."""
    flags: list[TransactionFlag] = []
    if stopped.unparsable:
        flags.append(TransactionFlag.UNPARSABLE_STOP)
    if stopped.future:
        flags.append(TransactionFlag.FUTURE_STOP)
    if meter_stop < meter_start:
        flags.append(TransactionFlag.METER_REGRESSION)
    if started_at is not None and stopped.value < started_at:
        flags.append(TransactionFlag.STOP_BEFORE_START)
    return flags


def energy_wh(
    *, meter_start: int | None, meter_stop: int | None, last_register_wh: float | None
) -> float | None:
    """Energy of a transaction in Wh.

    A completed transaction is meterStop - meterStart (reliability note §2.4: do not mix in
    MeterValues registers); an active one is the latest import register - meterStart.
    """
    if meter_start is None:
        return None
    if meter_stop is not None:
        return float(meter_stop - meter_start)
    if last_register_wh is not None:
        return last_register_wh - meter_start
    return None


def merge_flags(existing: list[str], new: list[TransactionFlag]) -> list[str]:
    """Existing flags plus new ones, in order, without repeats."""
    merged = list(existing)
    for flag in new:
        if flag.value not in merged:
            merged.append(flag.value)
    return merged
