"""Transaction rules: dedup keys, sanity flags and energy, decided without I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.core.clock import ParsedTime
from csms.core.meter import Sample

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
    """What makes two StartTransaction.req the same one (docs/ocpp.md, "Transactions")."""

    charge_point_id: str
    connector_id: int
    id_tag: str
    timestamp: datetime
    meter_start: int


@dataclass(frozen=True)
class StopRequest:
    """A StopTransaction (OCPP 1.6 §6.51) as csms keeps it."""

    charge_point_id: str
    transaction_id: int
    id_tag: str | None
    meter_stop: int
    stopped: ParsedTime
    # OCPP-J errata §2.6: reason may be absent and then means Local.
    reason: str | None
    samples: Sequence[Sample]


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

    A completed transaction is meterStop - meterStart, the charger's own meter values in
    Wh at start and end (OCPP 1.6 §6.49, §6.51); sampled MeterValues registers, which may
    be missing or arrive late, are not mixed in. An active one is the latest import
    register - meterStart (docs/ocpp.md, "Transactions").
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


def is_own_transaction(*, owner: str | None, charge_point_id: str) -> bool:
    """Whether a transactionId a charger sends names one of its own transactions.

    Any other id (unknown, another charger's, or -1 per OCPP 1.6 errata §3.18) makes a Stop
    an orphan: OCPP 1.6 §4.10 lets the CSMS refuse no Stop, so it is kept on its own.
    """
    return owner is not None and owner == charge_point_id


def ends_on_new_start(*, open_started_at: datetime | None, new_start: StartKey) -> bool:
    """Whether a new Start ends a transaction still open on the same connector.

    A connector runs one transaction at a time (OCPP 1.6 §3.5), so a Start there means the
    open one's Stop was lost: it ends at the new start, unless it started later (then the
    new Start is the older, resent one).
    """
    return open_started_at is not None and open_started_at <= new_start.timestamp


def cdr_due(
    *,
    started_at: datetime | None,
    stopped_at: datetime | None,
    meter_stop: int | None,
    flags: Sequence[str],
) -> bool:
    """Whether a stopped transaction still gets its one CDR (docs/events.md, cdr.created).

    It needs the charger's own stop values (meterStop), times in order, and no CDR yet.
    """
    if started_at is None or stopped_at is None or meter_stop is None:
        return False
    return stopped_at >= started_at and TransactionFlag.CDR_CREATED.value not in flags
