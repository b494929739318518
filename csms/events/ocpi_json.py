"""OCPI objects as the events carry them: plain JSON, as their pydantic models would dump it.

`ocpi_json` walks a built OCPI dict (UTC DateTimes, numbers as floats, no nulls);
`session_json` writes a Session directly, for session.updated and session.stopped, which
run on every MeterValues and every Stop: their facts are those session.started was
validated with (csms.events.build), so the model's round trip is not repeated, and
tests/events/test_build.py compares the output with the validated form byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any

from csms.core import ocpi
from csms.core.clock import format_utc
from csms.core.session import SessionFacts, TokenFacts
from csms.core.tariff_ocpi import PricedSession, ocpi_charging_periods
from csms.events.models_base import format_datetime, to_utc


def session_json(
    facts: SessionFacts, *, at: datetime, priced: PricedSession | None
) -> dict[str, Any]:
    """`ocpi_json(_session_ocpi(...))` written directly, key for key in `build_session`'s
    order and with its nulls left out, for session.updated (a MeterValues' hot path).

    Only the values that are not JSON already are converted (no walk of the whole
    Session); the token and the EVSE uid, the same for every event of a session, are
    kept (`cdr_token_json`, `evse_uid_of`); `last_updated`, new each time, is formatted
    without going through the DateTime cache (`ocpi_time`).
    """
    session: dict[str, Any] = {
        "country_code": facts.country_code,
        "party_id": facts.party_id,
        "id": facts.session_id,
        "start_date_time": utc_text(facts.start),
    }
    if facts.stop is not None:
        session["end_date_time"] = utc_text(facts.stop)
    session["kwh"] = float(ocpi.session_energy_kwh(facts))
    session["cdr_token"] = cdr_token_json(facts)
    session["auth_method"] = plain(facts.auth_method)
    if facts.authorization_reference is not None:
        session["authorization_reference"] = facts.authorization_reference
    _put(session, "location_id", facts.location_id)
    session["evse_uid"] = evse_uid_of(facts)
    _put(session, "connector_id", facts.ocpi_connector_id)
    if facts.meter_id is not None:
        session["meter_id"] = facts.meter_id
    _put(session, "currency", facts.currency)
    if priced is None:
        periods = ocpi.build_charging_periods(facts)
    else:
        periods = ocpi_charging_periods(priced.costs)
    if periods:
        session["charging_periods"] = ocpi_json(periods)
    if priced is not None:
        session["total_cost"] = ocpi_json(ocpi.build_price(priced.costs.total))
    session["status"] = ocpi.session_status(facts).value
    session["last_updated"] = ocpi_time(at)
    return session


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    # A field its type says is always there, yet left out when null, as `ocpi_json` does.
    if value is not None:
        target[key] = value


def plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


# `cdr_token_json`'s tokens by (token, country code, party id, idTag); emptied when full.
_CDR_TOKENS: dict[tuple[TokenFacts | None, str, str, str], dict[str, Any]] = {}
_CDR_TOKENS_MAX = 16_384


def cdr_token_json(facts: SessionFacts) -> dict[str, Any]:
    """`ocpi_json(build_cdr_token(facts))`, built once per token and copied for each event
    (an event's data is its own)."""
    key = (facts.token, facts.country_code, facts.party_id, facts.id_tag)
    token = _CDR_TOKENS.get(key)
    if token is None:
        if len(_CDR_TOKENS) >= _CDR_TOKENS_MAX:
            _CDR_TOKENS.clear()
        built = ocpi.build_cdr_token(facts)
        token = {name: plain(item) for name, item in built.items() if item is not None}
        _CDR_TOKENS[key] = token
    return dict(token)


def evse_uid_of(facts: SessionFacts) -> str:
    """`ocpi.evse_uid_of`, the derived uid computed once per connector."""
    if facts.evse_uid is not None:
        return facts.evse_uid
    return _derived_evse_uid(facts.charge_point_id, facts.connector_id)


@lru_cache(maxsize=16_384)
def _derived_evse_uid(charge_point_id: str, connector_id: int) -> str:
    return ocpi.evse_uid_or_derived(charge_point_id, connector_id)


_JSON_SCALARS = frozenset({str, int, float, bool})


def ocpi_json(value: Any) -> Any:
    """OCPI data as its model would dump it: UTC DateTimes, numbers as floats, no nulls.

    Three session.updated a session run this on a Session of some 40 values: the scalars,
    most of them, are kept inline (no call each), and the DateTimes, which repeat from one
    event of a session to the next, are formatted once (`utc_text`)."""
    kind = type(value)
    if kind in _JSON_SCALARS:  # most values: no isinstance chain
        return value
    if kind is dict:
        return {
            key: item if type(item) in _JSON_SCALARS else ocpi_json(item)
            for key, item in value.items()
            if item is not None
        }
    if kind is list:
        return [item if type(item) in _JSON_SCALARS else ocpi_json(item) for item in value]
    if kind is Decimal:
        return float(value)
    if kind is datetime:
        return utc_text(value)
    if isinstance(value, dict):
        return {key: ocpi_json(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [ocpi_json(item) for item in value]
    if isinstance(value, datetime):
        return format_datetime(to_utc(value))
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    return value


def ocpi_time(value: datetime) -> str:
    """`format_datetime(to_utc(value))` for a time seen once (a MeterValues' timestamp).

    A UTC time takes `format_utc`'s path (the text up to the second is kept from the
    previous call, csms.core.clock), which writes the same text but with ".000" when the
    milliseconds are zero, where OCPI's form has none; years before 1000 (which
    `strftime` does not pad) and other zones go the general way."""
    if value.tzinfo is not UTC or value.year < 1000:
        return format_datetime(to_utc(value))
    text = format_utc(value)
    return text if value.microsecond >= 1000 else text[:-5] + "Z"


@lru_cache(maxsize=4096)
def utc_text(value: datetime) -> str:
    """`format_datetime` of the instant in UTC. Equal datetimes are the same instant
    whatever their zones, so one text serves them all; a naive one is refused (not cached)."""
    return format_datetime(to_utc(value))
