"""Timestamps: lenient parsing of what chargers send, strict UTC 'Z' for what we send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Timestamps more than this far in the future are flagged, never rejected: a charger whose
# clock is wrong still reports real transactions (docs/ocpp.md, "Transactions").
FUTURE_TOLERANCE = timedelta(minutes=5)
# A clock that was never set (no real-time clock, lost after a power cut) reads its epoch,
# typically 1970 or 2000: nothing OCPP 1.6 carries was sent before this.
UNSET_BEFORE = datetime(2010, 1, 1, tzinfo=UTC)
# ...or a default far ahead (2038, 2099): a wrong time zone is hours off, never a year.
UNSET_AFTER = timedelta(days=365)
# A century away is no clock reading at all (9999-12-31 overflows every date sum): such a
# timestamp is unparsable, the time of receipt stands in (issue 13).
UNREADABLE_BEYOND = timedelta(days=36525)


@dataclass(frozen=True)
class ParsedTime:
    """A charger timestamp normalised to aware UTC, with what was wrong with it."""

    value: datetime
    unparsable: bool = False
    future: bool = False
    # The charger's clock is obviously not set (docs/ocpp.md, "Transactions").
    unset: bool = False

    @property
    def flags(self) -> tuple[str, ...]:
        if not (self.unparsable or self.future or self.unset):
            return ()
        return (
            (("unparsable_timestamp",) if self.unparsable else ())
            + (("future_timestamp",) if self.future else ())
            + (("unset_timestamp",) if self.unset else ())
        )


def parse_timestamp(text: object, *, received: datetime) -> ParsedTime:
    """Parse an OCPP timestamp the way chargers really send them.

    OCPP 1.6 §3.15: receivers must handle fractional seconds and offsets. A naive time
    is taken as UTC: many chargers send timestamps without a zone, and UTC is what OCPP
    1.6 §3.14 recommends. Garbage becomes the time of receipt, flagged, because rejecting
    a transaction message makes the charger discard it (docs/ocpp.md, "Transactions").
    """
    parsed = _parse(text) if isinstance(text, str) else None
    if parsed is None:
        return _parsed_time(received, True, False, False)
    # One subtraction for every check, and ParsedTime built past its frozen __init__: on
    # every MeterValues of the protocol path (bench/analysis.md, P1).
    ahead = parsed - received
    if ahead > UNREADABLE_BEYOND or ahead < -UNREADABLE_BEYOND:
        return _parsed_time(received, True, False, False)
    return _parsed_time(
        parsed,
        False,
        ahead > FUTURE_TOLERANCE,
        parsed < UNSET_BEFORE or ahead > UNSET_AFTER,
    )


def _parsed_time(value: datetime, unparsable: bool, future: bool, unset: bool) -> ParsedTime:
    """`ParsedTime(...)` at a third of the cost (a frozen dataclass's __init__ sets each
    field through object.__setattr__); it sets every field of ParsedTime."""
    parsed: ParsedTime = object.__new__(ParsedTime)
    parsed.__dict__.update(value=value, unparsable=unparsable, future=future, unset=unset)
    return parsed


def _parse(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # 0001-01-01T00:00:00+14:00 and 9999-12-31T23:59:59-14:00 have no UTC datetime:
        # they are as unreadable as garbage (issue 13).
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def as_utc(value: datetime) -> datetime:
    """Aware UTC for a datetime that may be naive (naive means UTC, as stored by SQLite)."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# The last whole second format_utc wrote: (its start, its end, its text up to the seconds).
# One tuple, replaced whole, so a reader on another thread never sees half of it.
_SECOND: tuple[datetime, datetime, str] = (datetime.min.replace(tzinfo=UTC),) * 2 + ("",)
_ONE_SECOND = timedelta(seconds=1)


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a 'Z' (many chargers reject '+00:00')."""
    value = as_utc(value)
    # Every Heartbeat and boot answered formats the time: the text up to the seconds is
    # kept for the second it names, and only the milliseconds are written per call. The
    # result is what isoformat(timespec="milliseconds") gives, the fraction truncated.
    start, end, seconds = _SECOND
    if not start <= value < end:
        start = value.replace(microsecond=0)
        try:
            end = start + _ONE_SECOND
        except OverflowError:  # the last second of year 9999
            return value.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
        seconds = start.isoformat().removesuffix("+00:00")
        _remember_second(start, end, seconds)
    return f"{seconds}.{value.microsecond // 1000:03d}Z"


def _remember_second(start: datetime, end: datetime, seconds: str) -> None:
    global _SECOND  # a cache: csms/core holds no other state
    _SECOND = (start, end, seconds)
