"""The CloudEvents 1.0 structured JSON envelope of csms events, their types and MQTT topics.

As docs/events.md ("Topic", "Payload") states: topic
``{mqtt.topic_prefix}/events/{chargePointId}/{type}`` at QoS 1, ``evse.status``,
``chargepoint.booted`` and ``chargepoint.network_status`` also retained; payload a
CloudEvents 1.0 object with ``specversion`` "1.0", ``id`` a UUID stable across
redeliveries, ``source`` "/charge-points/{chargePointId}", ``type``, ``subject``, ``time``
(RFC 3339, UTC, ``Z``), ``datacontenttype`` "application/json" and ``data`` an object.
MQTT 3.1.1 carries CloudEvents in structured mode only (cloudevents/spec
bindings/mqtt-protocol-binding.md), which is what this is.

Hand-rolled rather than the ``cloudevents`` SDK: it has no MQTT binding. Serialised with
orjson.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel

from csms.core.clock import format_utc
from csms.events.models_base import to_json_dict

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"


class EventType(StrEnum):
    """Every event ``type`` csms publishes (docs/events.md, "Types")."""

    CHARGEPOINT_CONNECTED = "chargepoint.connected"
    CHARGEPOINT_DISCONNECTED = "chargepoint.disconnected"
    CHARGEPOINT_BOOTED = "chargepoint.booted"
    CHARGEPOINT_NETWORK_STATUS = "chargepoint.network_status"
    CHARGEPOINT_REGISTRATION_STATUS = "chargepoint.registration_status"
    EVSE_STATUS = "evse.status"
    SESSION_STARTED = "session.started"
    SESSION_UPDATED = "session.updated"
    SESSION_STOPPED = "session.stopped"
    METER_VALUES = "meter.values"
    CDR_CREATED = "cdr.created"
    COMMAND_COMPLETED = "command.completed"
    AUTHORIZATION = "authorization"
    RESERVATION_STATUS = "reservation.status"
    LOCATION_UPDATED = "location.updated"
    TARIFF_UPDATED = "tariff.updated"
    SECURITY_EVENT = "security.event"
    USER_BALANCE_CHANGED = "user.balance_changed"
    USER_SUBSCRIPTION_CHANGED = "user.subscription_changed"
    WEBHOOK_FAILING = "webhook.failing"
    CIRCUIT_ALLOCATION = "circuit.allocation"
    CIRCUIT_MEMBER_UNCONTROLLABLE = "circuit.member.uncontrollable"
    CIRCUIT_UPDATED = "circuit.updated"


RETAINED_EVENT_TYPES = frozenset(
    {
        EventType.EVSE_STATUS,
        EventType.CHARGEPOINT_BOOTED,
        EventType.CHARGEPOINT_NETWORK_STATUS,
    }
)
"""The types published retained (docs/events.md, "Topic"): the latest state, not a happening."""


def is_retained(event_type: EventType) -> bool:
    """Whether events of this type are published with the MQTT retain flag."""
    return event_type in RETAINED_EVENT_TYPES


# MQTT 3.1.1 §4.7.1: "+" and "#" are wildcards and may not appear in a topic name. A
# charge point identity may contain them (docs/ocpp.md, "Connecting": no "/", control
# characters or whitespace, but "+" and "#" are allowed), so they are percent-encoded, and
# "%" too to keep the encoding reversible (docs/events.md, "Topic").
_TOPIC_ESCAPES = str.maketrans({"%": "%25", "+": "%2B", "#": "%23"})


def topic_level(charge_point_id: str) -> str:
    """The charge point's topic level: its identity, with ``%``, ``+`` and ``#`` %-encoded."""
    if not charge_point_id or "/" in charge_point_id or "\x00" in charge_point_id:
        raise ValueError(f"charge point id {charge_point_id!r} cannot be a topic level")
    return charge_point_id.translate(_TOPIC_ESCAPES)


def event_topic(prefix: str, charge_point_id: str, event_type: EventType) -> str:
    """``{prefix}/events/{chargePointId}/{type}``.

    Raises:
        ValueError: the prefix is empty, starts with ``$`` (MQTT 3.1.1 §4.7.2: reserved
            for the broker) or contains a wildcard or NUL.
    """
    if not prefix or prefix.startswith("$") or any(c in prefix for c in "+#\x00"):
        raise ValueError(f"topic prefix {prefix!r} is not a valid topic name")
    return f"{prefix}/events/{topic_level(charge_point_id)}/{event_type.value}"


def event_source(charge_point_id: str) -> str:
    """The CloudEvents ``source``: exactly ``/charge-points/{chargePointId}``."""
    return f"/charge-points/{charge_point_id}"


# Events about something other than a charge point: the source names that thing, and the
# outbox's charge point column holds its id.
_SOURCE_PREFIXES = {EventType.WEBHOOK_FAILING.value: "/webhooks/"}


def stored_source(event_type: str, key: str) -> str:
    """The ``source`` of an outbox row: ``/webhooks/{id}`` for webhook events, else
    ``/charge-points/{chargePointId}``."""
    prefix = _SOURCE_PREFIXES.get(event_type)
    return event_source(key) if prefix is None else f"{prefix}{key}"


@dataclass(frozen=True, kw_only=True)
class CloudEvent:
    """One event as a CloudEvents 1.0 structured-mode JSON object.

    ``id`` + ``source`` identify the event (CloudEvents: consumers may treat repeats as
    duplicates), so the outbox generates ``id`` once and reuses it on every redelivery.
    ``time`` is when it happened (docs/events.md, "Payload": the charger's timestamp where
    the message has one), aware; it is written in UTC with ``Z``.
    """

    id: UUID
    source: str
    type: EventType
    subject: str
    time: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("event time is naive; it must be aware")
        if not self.source or not self.subject:
            raise ValueError("event source and subject are non-empty")

    def to_dict(self) -> dict[str, Any]:
        """The CloudEvents attributes and ``data``, in the order docs/events.md shows."""
        return {
            "specversion": SPECVERSION,
            "id": str(self.id),
            "source": self.source,
            "type": self.type.value,
            "subject": self.subject,
            "time": format_utc(self.time),
            "datacontenttype": DATACONTENTTYPE,
            "data": self.data,
        }

    def encode(self) -> bytes:
        """The MQTT payload: the structured-mode JSON, UTF-8.

        ``data`` may hold JSON types, pydantic models (dumped by alias, without unset
        optional fields), ``Decimal`` (a JSON number), enums (their value), UUIDs and
        aware datetimes (UTC ``Z``); anything else raises TypeError.
        """
        return orjson.dumps(
            self.to_dict(), default=_encode_default, option=orjson.OPT_PASSTHROUGH_DATETIME
        )


def encode_stored(
    *,
    event_id: str,
    charge_point_id: str,
    event_type: str,
    subject: str,
    time: datetime,
    data_json: str | bytes,
) -> bytes:
    """The same payload as ``CloudEvent.encode``, for an event whose ``data`` is JSON text.

    The relay reads ``data`` from the outbox as the text it was stored as and splices it
    in, instead of parsing it only to serialise it again.
    """
    if isinstance(data_json, str):
        data_json = data_json.encode()
    head = orjson.dumps(
        {
            "specversion": SPECVERSION,
            "id": event_id,
            "source": stored_source(event_type, charge_point_id),
            "type": event_type,
            "subject": subject,
            "time": format_utc(time),
            "datacontenttype": DATACONTENTTYPE,
        }
    )
    return b"".join((head[:-1], b',"data":', data_json, b"}"))


def _encode_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_json_dict(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError("naive datetime in event data")
        return format_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def make_event(
    *,
    event_id: UUID,
    charge_point_id: str,
    event_type: EventType,
    time: datetime,
    data: Mapping[str, Any],
    subject: str | None = None,
) -> CloudEvent:
    """An event from ``/charge-points/{charge_point_id}``.

    ``subject`` defaults to the charge point id; pass e.g. ``"CP1/1"`` for a connector.
    Keep idTags out of it (CloudEvents: "Sensitive information SHOULD NOT be carried or
    represented in context attributes").
    """
    return CloudEvent(
        id=event_id,
        source=event_source(charge_point_id),
        type=event_type,
        subject=subject if subject is not None else charge_point_id,
        time=time,
        data=data,
    )


_TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
)


def decode_event(payload: bytes) -> CloudEvent:
    """Parse an event published by csms (for consumers and tests).

    Raises:
        ValueError: not JSON, or not an event in the form docs/events.md describes.
    """
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError("event payload is not JSON") from exc
    if not isinstance(obj, dict) or set(obj) != _ATTRIBUTES:
        raise ValueError("event payload does not have exactly the CloudEvents attributes")
    if obj["specversion"] != SPECVERSION or obj["datacontenttype"] != DATACONTENTTYPE:
        raise ValueError("event specversion or datacontenttype is not csms's (docs/events.md)")
    time = obj["time"]
    if not isinstance(time, str) or not _TIME_TEXT.fullmatch(time):
        raise ValueError("event time is not RFC 3339 UTC with Z")
    data = obj["data"]
    if not isinstance(data, dict):
        raise ValueError("event data is not an object")
    for name in ("id", "source", "type", "subject"):
        if not isinstance(obj[name], str):
            raise ValueError(f"event {name} is not a string")
    return CloudEvent(
        id=UUID(obj["id"]),
        source=obj["source"],
        type=EventType(obj["type"]),
        subject=obj["subject"],
        time=datetime.fromisoformat(time),
        data=data,
    )
