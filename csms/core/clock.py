"""Timestamps: lenient parsing of what chargers send, strict UTC 'Z' for what we send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Reliability note §2.6: flag, never reject, timestamps more than this far in the future.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class ParsedTime:
    """A charger timestamp normalised to aware UTC, with what was wrong with it."""

    value: datetime
    unparsable: bool = False
    future: bool = False

    @property
    def flags(self) -> tuple[str, ...]:
        return (("unparsable_timestamp",) if self.unparsable else ()) + (
            ("future_timestamp",) if self.future else ()
        )


def parse_timestamp(text: object, *, received: datetime) -> ParsedTime:
    """Parse an OCPP timestamp the way chargers really send them.

    OCPP 1.6 §3.15: receivers must handle fractional seconds and offsets. A naive time
    is taken as UTC (field practice, reliability note F5); garbage becomes the time of
    receipt, flagged, because rejecting a transaction message makes the charger discard it.
    """
    parsed = _parse(text) if isinstance(text, str) else None
    if parsed is None:
        return ParsedTime(value=received, unparsable=True)
    return ParsedTime(value=parsed, future=parsed - received > FUTURE_TOLERANCE)


def _parse(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC for a datetime that may be naive (naive means UTC, as stored by SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a 'Z' (many chargers reject '+00:00')."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
