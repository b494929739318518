"""Timestamps: lenient parsing of charger input, strict UTC 'Z' output (docs/ocpp.md,
"Transactions")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from csms.core.clock import format_utc, parse_timestamp

RECEIVED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected", "flags"),
    [
        ("2024-01-01T10:00:00", datetime(2024, 1, 1, 10, 0, tzinfo=UTC), ()),
        ("2024-01-01T10:00:00+02:00", datetime(2024, 1, 1, 8, 0, tzinfo=UTC), ()),
        ("2024-01-01T10:00:00.123456Z", datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC), ()),
        ("2024-01-01T10:00:00Z", datetime(2024, 1, 1, 10, 0, tzinfo=UTC), ()),
        ("yesterday", RECEIVED, ("unparsable_timestamp",)),
        ("", RECEIVED, ("unparsable_timestamp",)),
        (12345, RECEIVED, ("unparsable_timestamp",)),
        ("2024-01-03T12:00:00Z", datetime(2024, 1, 3, 12, 0, tzinfo=UTC), ("future_timestamp",)),
        ("2024-01-01T12:04:00Z", datetime(2024, 1, 1, 12, 4, tzinfo=UTC), ()),
        # A clock that was never set: its epoch, or a default far ahead.
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC), ("unset_timestamp",)),
        (
            "2009-12-31T23:59:59Z",
            datetime(2009, 12, 31, 23, 59, 59, tzinfo=UTC),
            ("unset_timestamp",),
        ),
        ("2010-01-01T00:00:00Z", datetime(2010, 1, 1, tzinfo=UTC), ()),
        (
            "2038-01-19T03:14:07Z",
            datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
            ("future_timestamp", "unset_timestamp"),
        ),
    ],
)
def test_parse_timestamp(text: object, expected: datetime, flags: tuple[str, ...]) -> None:
    """Naive is UTC, offsets normalised, garbage is receipt time + flag; unset clocks flagged."""
    parsed = parse_timestamp(text, received=RECEIVED)
    assert parsed.value == expected
    assert parsed.value.tzinfo is not None
    assert parsed.value.utcoffset() == timedelta(0)
    assert parsed.flags == flags


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), "2024-05-06T07:08:09.123Z"),
        (
            datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-06T07:08:09.000Z",
        ),
        (datetime(2024, 5, 6, 7, 8, 9), "2024-05-06T07:08:09.000Z"),
    ],
)
def test_format_utc_always_ends_in_z(value: datetime, text: str) -> None:
    """What we send is UTC with milliseconds and a 'Z' (several chargers reject +00:00)."""
    assert format_utc(value) == text
