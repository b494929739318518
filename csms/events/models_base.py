"""The strict pydantic base shared by the OCPI and OICP models, and their JSON dump."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """Strict types, no unknown fields, immutable.

    Strict mode means Python input must already have the right types (``Decimal``,
    aware ``datetime``, our enum members); JSON input is parsed from the spec's forms.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )


def to_json_dict(model: BaseModel) -> dict[str, Any]:
    """The model as a JSON-ready dict: spec field names, optional fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def require_aware(value: datetime) -> datetime:
    """An aware datetime, unchanged; a naive one is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: a time zone is required")
    return value


def format_datetime(value: datetime) -> str:
    """RFC 3339 ``YYYY-MM-DDTHH:MM:SS[.fff](Z|±hh:mm)``: milliseconds only when non-zero.

    UTC is written ``Z`` (OCPI types §DateTime: "+00:00 is not the same as UTC").
    """
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if milliseconds := value.microsecond // 1000:
        text += f".{milliseconds:03d}"
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime: a time zone is required")
    if not offset:
        return text + "Z"
    sign = "-" if offset.days < 0 else "+"
    minutes = abs(offset.days * 86400 + offset.seconds) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def to_utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused."""
    return require_aware(value).astimezone(UTC)


def datetime_text_parser(pattern: str, message: str) -> Callable[[Any, ValidationInfo], Any]:
    """A before-validator that parses JSON date-time text matching `pattern`.

    A before-validator hands its result to the strict datetime check as Python input, so
    JSON text is parsed here; Python input passes through.
    """
    compiled = re.compile(pattern)

    def parse(value: Any, info: ValidationInfo) -> Any:
        if info.mode != "json" or not isinstance(value, str):
            return value
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return datetime.fromisoformat(value)

    return parse


def number_parser(message: str) -> Callable[[Any, ValidationInfo], Any]:
    """A before-validator that turns JSON numbers into Decimal via their shortest text
    (so 0.1 stays 0.1); JSON strings are not numbers. Python input must be a Decimal."""

    def parse(value: Any, info: ValidationInfo) -> Any:
        if info.mode != "json":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(message)
        return Decimal(str(value))

    return parse
