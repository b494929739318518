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
        return ParsedTime(value=received, unparsable=True)
    ahead = parsed - received
    return ParsedTime(
        value=parsed,
        future=ahead > FUTURE_TOLERANCE,
        unset=parsed < UNSET_BEFORE or ahead > UNSET_AFTER,
    )


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


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a 'Z' (many chargers reject '+00:00')."""
    # isoformat, not strftime: a third of the cost, on every Heartbeat and boot answered.
    text = as_utc(value).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"
