"""Tolerant mode: the schema deviations real chargers make, normalised per vendor and model.

Strict is the default: a payload that breaks the OCPP 1.6 schema gets its CALLERROR
(OCPP-J §4.2.3). A leniency rule (`[[ocpp.leniency]]`, docs/ocpp.md "Tolerant mode")
names the chargers, by the vendor and model of their BootNotification, and the deviations
to normalise for them. Normalising rewrites the payload into the form the schema wants,
before validation, so everything after it (handlers, the store, events) sees only that
form. What was changed is reported, so the connection can log it once and count it.

Sans I/O, like `rpc.py`: a payload and its schema in, the normalised payload out.
"""

from __future__ import annotations

import fnmatch
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import orjson

from csms.config import LeniencyRule
from csms.core.clock import format_utc
from csms.ocpp16.convert import NEVER_SHORTENED


class Deviation(StrEnum):
    """A way chargers break the 1.6 schema that csms can undo without guessing."""

    # A string over its maxLength (mobilityhouse/ocpp#273: a 33-character
    # chargeBoxSerialNumber) is cut to the maximum; identifiers (idTag) never are.
    LONG_STRINGS = "long_strings"
    # A decimal in an integer field (a meterStop of 26008.333 Wh) is rounded half to even.
    DECIMAL_INTEGERS = "decimal_integers"
    # An enum value in the wrong letter case ("charging") gets the schema's spelling.
    ENUM_CASE = "enum_case"
    # A number sent as a JSON string ("connectorId": "1") where the schema wants a number.
    NUMBERS_AS_STRINGS = "numbers_as_strings"
    # A bare number where the schema wants a string (mobilityhouse/ocpp#377: "value": 10).
    STRINGS_AS_NUMBERS = "strings_as_numbers"
    # A timestamp without an offset (evcc-io/evcc#10399, Growatt THOR) is read in the
    # rule's time zone and rewritten in UTC; strict mode takes it as UTC (docs/ocpp.md).
    NAIVE_TIMESTAMPS = "naive_timestamps"
    # A property the schema does not define (OCPP-J errata §3.2 forbids them) is dropped.
    UNKNOWN_FIELDS = "unknown_fields"


@dataclass(frozen=True)
class Normalisation:
    """One value csms changed, and how."""

    deviation: Deviation
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Profile:
    """What to normalise for one charger."""

    deviations: frozenset[Deviation]
    zone: tzinfo | None = None

    def __contains__(self, deviation: object) -> bool:
        return deviation in self.deviations


@dataclass(frozen=True)
class _CompiledRule:
    vendor: str
    model: str
    profile: Profile


@dataclass
class Leniency:
    """The configured leniency rules; the first rule that matches a charger applies."""

    rules: tuple[_CompiledRule, ...] = field(default_factory=tuple)

    @classmethod
    def from_rules(cls, rules: Iterable[LeniencyRule]) -> Leniency:
        compiled = []
        for rule in rules:
            zone = zoneinfo.ZoneInfo(rule.timezone) if rule.timezone else None
            deviations = frozenset(Deviation(name) for name in rule.normalise)
            compiled.append(
                _CompiledRule(
                    vendor=rule.vendor.casefold(),
                    model=rule.model.casefold(),
                    profile=Profile(deviations=deviations, zone=zone),
                )
            )
        return cls(rules=tuple(compiled))

    def profile_for(self, vendor: str | None, model: str | None) -> Profile | None:
        """The profile for a charger of this vendor and model, or None (strict)."""
        if vendor is None or model is None:
            return None
        vendor, model = vendor.casefold(), model.casefold()
        for rule in self.rules:
            if fnmatch.fnmatchcase(vendor, rule.vendor) and fnmatch.fnmatchcase(model, rule.model):
                return rule.profile
        return None


def normalise(
    schema: Mapping[str, Any], payload: Any, profile: Profile
) -> tuple[Any, list[Normalisation]]:
    """The payload with the profile's deviations undone, and what was changed."""
    changes: list[Normalisation] = []
    walker = _Walker(root=schema, profile=profile, changes=changes)
    return walker.walk(schema, payload, ""), changes


@dataclass
class _Walker:
    root: Mapping[str, Any]
    profile: Profile
    changes: list[Normalisation]

    def walk(self, schema: Mapping[str, Any], value: Any, path: str) -> Any:
        schema = self._resolve(schema)
        kind = schema.get("type")
        if kind == "object" and isinstance(value, dict):
            return self._object(schema, value, path)
        if kind == "array" and isinstance(value, list):
            items = schema.get("items", {})
            return [self.walk(items, item, f"{path}/{i}") for i, item in enumerate(value)]
        if kind in ("integer", "number"):
            return self._number(kind, value, path)
        if kind == "string":
            return self._string(schema, value, path)
        return value

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/definitions/"):
            resolved = self.root.get("definitions", {}).get(reference.rsplit("/", 1)[1])
            if isinstance(resolved, Mapping):
                return resolved
        return schema

    def _change(self, deviation: Deviation, path: str, before: Any, after: Any) -> Any:
        self.changes.append(Normalisation(deviation, path or "/", before, after))
        return after

    def _object(self, schema: Mapping[str, Any], value: dict[str, Any], path: str) -> Any:
        properties: Mapping[str, Any] = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        result: dict[str, Any] = {}
        for key, item in value.items():
            where = f"{path}/{key}"
            if key in properties:
                result[key] = self.walk(properties[key], item, where)
            elif closed and Deviation.UNKNOWN_FIELDS in self.profile:
                self._change(Deviation.UNKNOWN_FIELDS, where, item, None)
            else:
                result[key] = item
        return result

    def _number(self, kind: str, value: Any, path: str) -> Any:
        if isinstance(value, str) and Deviation.NUMBERS_AS_STRINGS in self.profile:
            parsed = _decimal(value)
            if parsed is not None:
                number: Any = int(parsed) if parsed == parsed.to_integral_value() else parsed
                if kind == "number" and isinstance(number, Decimal):
                    number = float(number)
                value = self._change(Deviation.NUMBERS_AS_STRINGS, path, value, number)
        if kind != "integer" or isinstance(value, bool):
            return value
        if isinstance(value, (float, Decimal)) and Deviation.DECIMAL_INTEGERS in self.profile:
            if isinstance(value, float) and not math.isfinite(value):
                return value
            rounded = int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
            return self._change(Deviation.DECIMAL_INTEGERS, path, value, rounded)
        if isinstance(value, Decimal):
            return float(value)  # still not an integer: the schema check says so
        return value

    def _string(self, schema: Mapping[str, Any], value: Any, path: str) -> Any:
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and Deviation.STRINGS_AS_NUMBERS in self.profile
        ):
            value = self._change(
                Deviation.STRINGS_AS_NUMBERS, path, value, orjson.dumps(value).decode()
            )
        if not isinstance(value, str):
            return value
        options = schema.get("enum")
        if options and value not in options and Deviation.ENUM_CASE in self.profile:
            matches = [option for option in options if option.casefold() == value.casefold()]
            if len(matches) == 1:
                value = self._change(Deviation.ENUM_CASE, path, value, matches[0])
        limit = schema.get("maxLength")
        key = path.rsplit("/", 1)[-1]
        if (
            isinstance(limit, int)
            and len(value) > limit
            and key not in NEVER_SHORTENED
            and Deviation.LONG_STRINGS in self.profile
        ):
            value = self._change(Deviation.LONG_STRINGS, path, value, value[:limit])
        if schema.get("format") == "date-time" and self.profile.zone is not None:
            value = self._timestamp(value, path)
        return value

    def _timestamp(self, value: str, path: str) -> str:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return value  # left to the lenient parser: receipt time, flagged
        if parsed.tzinfo is not None:
            return value
        local = format_utc(parsed.replace(tzinfo=self.profile.zone))
        self._change(Deviation.NAIVE_TIMESTAMPS, path, value, local)
        return local


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
