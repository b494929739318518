"""Transaction rules: dedup keys, sanity flags and energy, decided without I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from csms.core.clock import ParsedTime
from csms.core.meter import Sample
from csms.core.session import import_register_wh

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
    # The charger's clock was obviously not set (before 2010 or a year ahead).
    UNSET_START = "unset_start"
    UNSET_STOP = "unset_stop"
    # The first CDR was built from what csms knew (forced or implicitly ended)...
    CDR_ESTIMATED = "cdr_estimated"
    # ...and was credited and replaced once the charger's own Stop arrived.
    CDR_CORRECTED = "cdr_corrected"
    # The Stop's meterStop was beyond 32 bits: the stop is kept without it (issue 13).
    UNREADABLE_METER_STOP = "unreadable_meter_stop"


class SessionEnd(StrEnum):
    """Who ended a session, as `session.stopped` and `cdr.created` tell consumers."""

    # The charger's own StopTransaction.
    CHARGER = "charger"
    # The operator's force stop (POST /transactions/{id}/stop with force).
    FORCED = "forced"
    # A new StartTransaction on the same connector while this one was open.
    IMPLICITLY_ENDED = "implicitly_ended"


class CdrStep(StrEnum):
    """What a transaction that just ended needs in CDRs (docs/events.md, cdr.created)."""

    NONE = "none"
    # Its one CDR: from the charger's values, or estimated when csms ended it.
    FIRST = "first"
    # OCPI 2.2.1 mod_cdrs §Credit CDRs: a credit for the estimated CDR, then a new CDR
    # with the charger's values.
    CORRECTION = "correction"


# A sample's flag: timestamped after its transaction's stop, so it counts for neither the
# session's energy nor its CDR (kept in its own column, shown among the sample's flags).
SAMPLE_AFTER_STOP = "after_stop"

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
    # None: the charger's meterStop could not be read (beyond 32 bits; docs/ocpp.md).
    meter_stop: int | None
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
    if started.unset:
        flags.append(TransactionFlag.UNSET_START)
    return flags


def stop_flags(
    *,
    meter_start: int | None,
    meter_stop: int | None,
    started_at: datetime | None,
    stopped: ParsedTime,
) -> list[TransactionFlag]:
    """Sanity checks on a stop; OCPP 1.6 §4.10: they never stop us answering."""
    flags: list[TransactionFlag] = []
    if stopped.unparsable:
        flags.append(TransactionFlag.UNPARSABLE_STOP)
    if stopped.future:
        flags.append(TransactionFlag.FUTURE_STOP)
    if stopped.unset:
        flags.append(TransactionFlag.UNSET_STOP)
    if meter_stop is None:
        flags.append(TransactionFlag.UNREADABLE_METER_STOP)
    elif meter_start is not None and meter_stop < meter_start:
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


def session_end(*, charger_stopped: bool, flags: Sequence[str]) -> SessionEnd:
    """Who ended a stopped transaction: the charger's own Stop wins over what csms decided."""
    if charger_stopped:
        return SessionEnd.CHARGER
    if TransactionFlag.FORCED_STOP.value in flags:
        return SessionEnd.FORCED
    return SessionEnd.IMPLICITLY_ENDED


def cdr_step(
    *,
    started_at: datetime | None,
    stopped_at: datetime | None,
    charger_stopped: bool,
    flags: Sequence[str],
) -> CdrStep:
    """The CDRs a stopped transaction still needs (docs/events.md, cdr.created).

    One CDR per transaction, as soon as it ends: from the charger's values, or estimated
    when csms ended it (forced, implicitly ended). An estimated CDR is corrected once, when
    the charger's own Stop arrives; a CDR with the charger's values is final. Times out of
    order (a stop before its start) give no CDR: there is no duration to bill.
    """
    if started_at is None or stopped_at is None or stopped_at < started_at:
        return CdrStep.NONE
    if TransactionFlag.CDR_CREATED.value not in flags:
        return CdrStep.FIRST
    corrected = TransactionFlag.CDR_CORRECTED.value in flags
    if charger_stopped and TransactionFlag.CDR_ESTIMATED.value in flags and not corrected:
        return CdrStep.CORRECTION
    return CdrStep.NONE


def register_at_stop(samples: Iterable[Sample], *, stopped_at: datetime) -> Decimal | None:
    """The newest total import register (Wh) read at or before the stop, if any."""
    best: tuple[datetime, Decimal] | None = None
    for sample in samples:
        if sample.timestamp > stopped_at:
            continue
        wh = import_register_wh(sample)
        if wh is not None and (best is None or sample.timestamp >= best[0]):
            best = (sample.timestamp, wh)
    return None if best is None else best[1]


def estimated_meter_stop(*, meter_start: int, register_wh: Decimal | float | None) -> int:
    """A meterStop for a transaction csms ended without the charger's Stop.

    The last register read at or before the end, rounded to the Wh as meterStop is an
    integer of Wh (OCPP 1.6 §6.51); with none, no energy is known: meterStart.
    """
    if register_wh is None:
        return meter_start
    return int(Decimal(str(register_wh)).to_integral_value(rounding=ROUND_HALF_UP))
