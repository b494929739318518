"""The fast paths of csms.core.clock give exactly what the plain code gave.

`format_utc` keeps the text of the last whole second and `parse_timestamp` builds its
`ParsedTime` past the frozen __init__ (bench/analysis.md, P1). The references below are
the code before those changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from csms.core.clock import (
    FUTURE_TOLERANCE,
    UNREADABLE_BEYOND,
    UNSET_AFTER,
    UNSET_BEFORE,
    ParsedTime,
    as_utc,
    format_utc,
    parse_timestamp,
)


def reference_format(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def reference_parse(text: object, *, received: datetime) -> ParsedTime:
    parsed = _reference_parse(text) if isinstance(text, str) else None
    if parsed is None or abs(parsed - received) > UNREADABLE_BEYOND:
        return ParsedTime(value=received, unparsable=True)
    ahead = parsed - received
    return ParsedTime(
        value=parsed,
        future=ahead > FUTURE_TOLERANCE,
        unset=parsed < UNSET_BEFORE or ahead > UNSET_AFTER,
    )


def _reference_parse(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


offsets = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
moments = st.datetimes(timezones=offsets)


@settings(max_examples=500)
@given(st.lists(moments, min_size=1, max_size=8))
def test_format_utc_is_isoformat_in_milliseconds(values: list[datetime]) -> None:
    """Whatever came before (the kept second or another), the text is isoformat's."""
    for value in values:
        try:
            expected = reference_format(value)
        except OverflowError:
            continue  # no UTC datetime: as before, format_utc raises too
        assert format_utc(value) == expected


def test_format_utc_within_one_second_and_at_its_edges() -> None:
    start = datetime(2026, 12, 7, 13, 0, 59, tzinfo=UTC)
    for value in (
        start,
        start + timedelta(microseconds=999),
        start + timedelta(microseconds=999_999),
        start + timedelta(seconds=1),
        start,
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
    ):
        assert format_utc(value) == reference_format(value)


def _texts(value: datetime) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            value.isoformat(),
            value.isoformat(timespec="milliseconds"),
            value.isoformat(timespec="seconds"),
            value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z",
            value.replace(tzinfo=None).isoformat(),
            f" {value.isoformat()} ",
        ]
    )


@settings(max_examples=500)
@given(
    st.one_of(moments.flatmap(_texts), st.text(max_size=30), st.integers(), st.none()),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_parse_timestamp_is_the_plain_parser(text: object, received: datetime) -> None:
    got = parse_timestamp(text, received=received)
    assert got == reference_parse(text, received=received)
    assert got.value.tzinfo is UTC
    assert got.flags == reference_parse(text, received=received).flags


@given(st.datetimes(min_value=datetime(2011, 1, 1), max_value=datetime(2090, 1, 1)))
def test_a_charger_time_near_receipt_parses_without_flags(value: datetime) -> None:
    received = value.replace(tzinfo=UTC)
    text = value.isoformat(timespec="milliseconds") + "Z"
    got = parse_timestamp(text, received=received)
    assert got == ParsedTime(value=received.replace(microsecond=value.microsecond // 1000 * 1000))
    assert got.flags == ()
    assert hash(got) == hash(ParsedTime(value=got.value))
