"""Event builders: the hot-path builders give exactly what the validated ones give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from csms.core.meter import ENERGY_IMPORT_REGISTER, Sample
from csms.core.ocpi import build_session
from csms.core.session import SessionFacts
from csms.events import build
from csms.events.envelope import EventType
from csms.events.models_ocpi import Session
from tests.sessions import session_facts

T0 = datetime(2024, 1, 1, 10, 7, 0, 123000, tzinfo=UTC)

FACTS = session_facts(T0)


def register(minutes: float, wh: str) -> Sample:
    return Sample(
        timestamp=T0 + timedelta(minutes=minutes),
        value=wh,
        measurand=ENERGY_IMPORT_REGISTER,
        unit="Wh",
        context="Sample.Periodic",
        location="Outlet",
        phase="",
        format="Raw",
    )


CASES = {
    "no register yet": FACTS,
    "register moved": dataclasses.replace(FACTS, latest_register_wh=1_012_345.6),
    "register below start": dataclasses.replace(FACTS, latest_register_wh=999_000.0),
    "with samples": dataclasses.replace(
        FACTS,
        latest_register_wh=1_020_000.0,
        samples=(register(0, "1000000"), register(20, "1010000"), register(45, "1020000")),
    ),
    "rejected tag": dataclasses.replace(FACTS, invalid=True, latest_register_wh=1_000_001.0),
    "local-time start": dataclasses.replace(
        FACTS, start=datetime(2024, 1, 1, 11, 7, tzinfo=timezone(timedelta(hours=1)))
    ),
}


@pytest.mark.parametrize("facts", CASES.values(), ids=CASES.keys())
def test_session_updated_equals_the_validated_session(facts: SessionFacts) -> None:
    """session.updated skips pydantic, yet its data is what the strict model dumps."""
    at = T0 + timedelta(minutes=50, milliseconds=7)
    fast = build.session_updated(facts, at=at)
    checked = build.session(EventType.SESSION_UPDATED, facts, at=at)
    assert fast.type == checked.type == EventType.SESSION_UPDATED.value
    assert fast.data == checked.data
    Session.model_validate(fast.data["ocpi"], by_alias=True, strict=False)


def test_session_updated_data_is_plain_json() -> None:
    """The hot-path Session holds only JSON types (it goes to the outbox as it is)."""
    facts = CASES["with samples"]
    data = build.ocpi_json(build_session(facts, last_updated=T0))

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)

    assert plain(data)


def test_meter_values_event_has_text_timestamps() -> None:
    """meter.values carries the charger's samples with RFC 3339 UTC timestamps."""
    event = build.meter_values(
        "CP001", connector_id=1, transaction_id=42, samples=[register(1, "1000500")], at=T0
    )
    assert event.data == {
        "connectorId": 1,
        "transactionId": 42,
        "sampledValues": [
            {
                "timestamp": "2024-01-01T10:08:00.123Z",
                "measurand": ENERGY_IMPORT_REGISTER,
                "phase": None,
                "unit": "Wh",
                "value": "1000500",
                "context": "Sample.Periodic",
                "location": "Outlet",
            }
        ],
    }
