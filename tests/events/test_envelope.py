"""The CloudEvents envelope, event types and topics exactly as docs/events.md says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import orjson
import pytest

from csms.core.ocpi import Status
from csms.events.envelope import (
    RETAINED_EVENT_TYPES,
    CloudEvent,
    EventType,
    decode_event,
    event_source,
    event_topic,
    is_retained,
    make_event,
)
from csms.events.models_ocpi import EvseStatusUpdate

EVENT_ID = UUID("0190f5a4-8b1e-7c3d-9e2f-1a2b3c4d5e6f")
WHEN = datetime(2024, 1, 1, 10, 0, 5, 120000, tzinfo=UTC)

CONTRACT_TYPES = [
    "chargepoint.connected",
    "chargepoint.disconnected",
    "chargepoint.booted",
    "chargepoint.network_status",
    "chargepoint.registration_status",
    "evse.status",
    "session.started",
    "session.updated",
    "session.stopped",
    "meter.values",
    "cdr.created",
    "command.completed",
    "authorization",
    "reservation.status",
    "location.updated",
    "tariff.updated",
    "security.event",
    "user.balance_changed",
    "user.subscription_changed",
    "webhook.failing",
    "circuit.allocation",
    "circuit.member.uncontrollable",
    "circuit.updated",
]


def test_event_types_are_the_contracts() -> None:
    """EventType has exactly the type names of docs/events.md."""
    assert sorted(t.value for t in EventType) == sorted(CONTRACT_TYPES)


@pytest.mark.parametrize("event_type", list(EventType))
def test_retained_types(event_type: EventType) -> None:
    """evse.status, chargepoint.booted and chargepoint.network_status are retained; no others."""
    retained = {"evse.status", "chargepoint.booted", "chargepoint.network_status"}
    assert is_retained(event_type) == (event_type.value in retained)
    assert {t.value for t in RETAINED_EVENT_TYPES} == retained


@pytest.mark.parametrize(
    ("prefix", "charge_point_id", "event_type", "topic"),
    [
        ("csms", "CP001", EventType.EVSE_STATUS, "csms/events/CP001/evse.status"),
        ("csms", "CP001", EventType.CDR_CREATED, "csms/events/CP001/cdr.created"),
        (
            "acme/v1",
            "RDAM-123",
            EventType.SESSION_UPDATED,
            "acme/v1/events/RDAM-123/session.updated",
        ),
        ("csms", "été", EventType.AUTHORIZATION, "csms/events/été/authorization"),
        # MQTT wildcards cannot be in a topic name: %-encoded, and % itself for symmetry.
        ("csms", "CP+1#2", EventType.METER_VALUES, "csms/events/CP%2B1%232/meter.values"),
        ("csms", "100%", EventType.METER_VALUES, "csms/events/100%25/meter.values"),
    ],
)
def test_event_topic(prefix: str, charge_point_id: str, event_type: EventType, topic: str) -> None:
    """The topic is {prefix}/events/{chargePointId}/{type}."""
    assert event_topic(prefix, charge_point_id, event_type) == topic


@pytest.mark.parametrize(
    ("prefix", "charge_point_id"),
    [
        ("", "CP1"),
        ("$SYS", "CP1"),
        ("csms/+", "CP1"),
        ("csms/#", "CP1"),
        ("csms", ""),
        ("csms", "a/b"),
    ],
)
def test_invalid_topic_parts(prefix: str, charge_point_id: str) -> None:
    """Prefixes and ids that cannot make a valid topic name are refused."""
    with pytest.raises(ValueError, match="topic"):
        event_topic(prefix, charge_point_id, EventType.EVSE_STATUS)


def test_envelope_is_exactly_the_contracts() -> None:
    """specversion, id, source, type, subject, time (UTC Z), datacontenttype, data."""
    event = make_event(
        event_id=EVENT_ID,
        charge_point_id="CP001",
        event_type=EventType.CHARGEPOINT_NETWORK_STATUS,
        time=WHEN,
        data={"status": "available"},
    )
    assert orjson.loads(event.encode()) == {
        "specversion": "1.0",
        "id": "0190f5a4-8b1e-7c3d-9e2f-1a2b3c4d5e6f",
        "source": "/charge-points/CP001",
        "type": "chargepoint.network_status",
        "subject": "CP001",
        "time": "2024-01-01T10:00:05.120Z",
        "datacontenttype": "application/json",
        "data": {"status": "available"},
    }


def test_encoding_is_stable() -> None:
    """The same event encodes to the same bytes (a redelivery is byte-identical)."""

    def build() -> bytes:
        return make_event(
            event_id=EVENT_ID,
            charge_point_id="CP001",
            event_type=EventType.EVSE_STATUS,
            time=WHEN,
            data={"connectorId": 1},
            subject="CP001/1",
        ).encode()

    assert build() == build()


def test_time_is_converted_to_utc() -> None:
    """A charger time with an offset is emitted in UTC with Z."""
    local = datetime(2024, 1, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    event = make_event(
        event_id=EVENT_ID,
        charge_point_id="CP001",
        event_type=EventType.CHARGEPOINT_CONNECTED,
        time=local,
        data={"chargePointId": "CP001"},
    )
    assert event.to_dict()["time"] == "2024-01-01T10:00:05.000Z"


def test_naive_time_is_refused() -> None:
    """An event time must be aware."""
    with pytest.raises(ValueError, match="naive"):
        make_event(
            event_id=EVENT_ID,
            charge_point_id="CP001",
            event_type=EventType.CHARGEPOINT_CONNECTED,
            time=datetime(2024, 1, 1),
            data={},
        )


def test_source_is_exactly_charge_points_id() -> None:
    """source is /charge-points/{id} verbatim."""
    assert event_source("RDAM 1") == "/charge-points/RDAM 1"


def test_data_with_models_decimals_and_datetimes() -> None:
    """Models dump by spec name, Decimals as JSON numbers, datetimes in UTC Z, enums by value."""
    update = EvseStatusUpdate.model_validate(
        {"evse_uid": "CP001*1", "status": Status.CHARGING, "last_updated": WHEN}
    )
    event = make_event(
        event_id=EVENT_ID,
        charge_point_id="CP001",
        event_type=EventType.EVSE_STATUS,
        time=WHEN,
        data={"ocpi": update, "kwh": Decimal("1.2345"), "at": WHEN, "status": Status.CHARGING},
    )
    assert orjson.loads(event.encode())["data"] == {
        "ocpi": {
            "evse_uid": "CP001*1",
            "status": "CHARGING",
            "last_updated": "2024-01-01T10:00:05.120Z",
        },
        "kwh": 1.2345,
        "at": "2024-01-01T10:00:05.120Z",
        "status": "CHARGING",
    }


def test_naive_datetime_in_data_is_refused() -> None:
    """A naive datetime in data cannot be encoded."""
    event = make_event(
        event_id=EVENT_ID,
        charge_point_id="CP001",
        event_type=EventType.METER_VALUES,
        time=WHEN,
        data={"at": datetime(2024, 1, 1)},
    )
    with pytest.raises(TypeError):
        event.encode()


def test_decode_round_trip() -> None:
    """decode_event reads back what encode wrote."""
    event = make_event(
        event_id=EVENT_ID,
        charge_point_id="CP001",
        event_type=EventType.SESSION_STARTED,
        time=WHEN,
        data={"transactionId": 7},
    )
    assert decode_event(event.encode()) == CloudEvent(
        id=EVENT_ID,
        source="/charge-points/CP001",
        type=EventType.SESSION_STARTED,
        subject="CP001",
        time=WHEN,
        data={"transactionId": 7},
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"specversion": "1.0"}',
        orjson.dumps(
            {
                "specversion": "0.3",
                "id": str(EVENT_ID),
                "source": "/charge-points/CP1",
                "type": "evse.status",
                "subject": "CP1",
                "time": "2024-01-01T10:00:05.120Z",
                "datacontenttype": "application/json",
                "data": {},
            }
        ),
        orjson.dumps(
            {
                "specversion": "1.0",
                "id": str(EVENT_ID),
                "source": "/charge-points/CP1",
                "type": "evse.status",
                "subject": "CP1",
                "time": "2024-01-01T10:00:05.120+00:00",
                "datacontenttype": "application/json",
                "data": {},
            }
        ),
    ],
)
def test_decode_refuses_other_payloads(payload: bytes) -> None:
    """Anything but the envelope of docs/events.md is refused."""
    with pytest.raises(ValueError, match="event"):
        decode_event(payload)
