"""Events as the contract spells them: one builder per type, from facts to a validated Event.

The OCPI and OICP parts go through the strict pydantic models here, so a wrong field name
or a naive timestamp fails a test, not a roaming partner, and what reaches the outbox is
plain JSON. Building an event never fails an OCPP answer: identifiers that cannot take the
OCPI/OICP form are replaced by stable derived ones.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import structlog

from csms.core import notifications, ocpi, oicp
from csms.core.charger import BootInfo, SecurityEventFacts
from csms.core.clock import format_utc
from csms.core.events import Event
from csms.core.meter import Sample
from csms.core.session import ChargerAtLocation, Party, SessionFacts
from csms.events.envelope import EventType
from csms.events.models_base import format_datetime, to_json_dict, to_utc
from csms.events.models_ocpi import Cdr, EvseStatusUpdate, Location, Session
from csms.events.models_oicp import ChargeDetailRecord, EvseStatusRecord

log = structlog.get_logger("csms.events")

_UID_NAMESPACE = uuid.UUID("4f0c7d3e-2a51-4c1e-9a8e-6f1f2b3c4d5e")


def _event(
    charge_point_id: str,
    event_type: EventType,
    time: datetime,
    data: dict[str, Any],
    subject: str | None = None,
) -> Event:
    return Event(
        id=uuid.uuid4(),
        charge_point_id=charge_point_id,
        type=event_type.value,
        time=time,
        data=data,
        subject=subject,
    )


def evse_uid(charge_point_id: str, connector_id: int) -> str:
    """The OCPI EVSE uid of a connector; a stable derived uid when the identity is too long."""
    try:
        return ocpi.format_evse_uid(charge_point_id, connector_id)
    except ValueError:
        return str(uuid.uuid5(_UID_NAMESPACE, f"{charge_point_id}*{connector_id}"))


def evse_id(party: Party, charge_point_id: str, connector_id: int) -> str:
    """The eMI3 EVSE id of a connector; a stable derived one when the identity does not fit."""
    try:
        return ocpi.format_evse_id(
            party.country_code, party.party_id, identity=charge_point_id, connector_id=connector_id
        )
    except ValueError:
        digest = hashlib.sha1(charge_point_id.encode()).hexdigest()[:16].upper()
        return f"{party.country_code}*{party.party_id}*E{digest}*{connector_id}"


# -- charge points -------------------------------------------------------------------------


def connected(charge_point_id: str, *, at: datetime, remote_address: str | None) -> Event:
    data: dict[str, Any] = {"chargePointId": charge_point_id}
    if remote_address is not None:
        data["remoteAddress"] = remote_address
    return _event(charge_point_id, EventType.CHARGEPOINT_CONNECTED, at, data)


def disconnected(charge_point_id: str, *, at: datetime, reason: str | None) -> Event:
    data: dict[str, Any] = {"chargePointId": charge_point_id}
    if reason:
        data["reason"] = reason
    return _event(charge_point_id, EventType.CHARGEPOINT_DISCONNECTED, at, data)


def network_status(charge_point_id: str, *, at: datetime, status: str) -> Event:
    return _event(charge_point_id, EventType.CHARGEPOINT_NETWORK_STATUS, at, {"status": status})


def booted(charge_point_id: str, *, at: datetime, info: BootInfo) -> Event:
    data = {
        "vendor": info.vendor,
        "model": info.model,
        "serialNumber": info.serial_number or info.charge_box_serial_number,
        "firmwareVersion": info.firmware_version,
        "bootStatus": "Accepted",
    }
    return _event(charge_point_id, EventType.CHARGEPOINT_BOOTED, at, data)


def evse_status(
    charge_point_id: str,
    *,
    party: Party,
    connector_id: int,
    ocpp_status: str | None,
    error_code: str | None,
    info: str | None,
    vendor_error_code: str | None,
    vendor_error_text: str | None,
    online: bool,
    at: datetime,
) -> Event:
    """`evse.status` for one connector (OCPP connector >= 1 is one OCPI EVSE)."""
    ocpi_part = EvseStatusUpdate.model_validate(
        ocpi.build_evse_status(
            evse_uid=evse_uid(charge_point_id, connector_id),
            ocpp_status=ocpp_status,
            online=online,
            last_updated=at,
        )
    )
    oicp_part = EvseStatusRecord.model_validate(
        oicp.build_evse_status_record(
            evse_id=evse_id(party, charge_point_id, connector_id),
            ocpp_status=ocpp_status,
            online=online,
        )
    )
    data: dict[str, Any] = {
        "connectorId": connector_id,
        "ocppStatus": ocpp_status,
        "errorCode": error_code,
        "info": info,
        "vendorErrorCode": vendor_error_code,
        "ocpi": to_json_dict(ocpi_part),
        "oicp": to_json_dict(oicp_part),
    }
    if vendor_error_text is not None:
        data["vendorErrorText"] = vendor_error_text
    subject = f"{charge_point_id}/{connector_id}"
    return _event(charge_point_id, EventType.EVSE_STATUS, at, data, subject)


# -- transactions --------------------------------------------------------------------------


def authorization(
    charge_point_id: str, *, at: datetime, id_tag: str, status: str, source: str
) -> Event:
    data = {"idTag": id_tag, "status": status, "source": source}
    return _event(charge_point_id, EventType.AUTHORIZATION, at, data)


def meter_values(
    charge_point_id: str,
    *,
    connector_id: int,
    transaction_id: int | None,
    samples: Sequence[Sample],
    at: datetime,
) -> Event:
    # The samples of one MeterValue share their timestamp: format it once.
    times: dict[int, str] = {}
    for sample in samples:
        if id(sample.timestamp) not in times:
            times[id(sample.timestamp)] = format_utc(sample.timestamp)
    data = {
        "connectorId": connector_id,
        "transactionId": transaction_id,
        "sampledValues": [
            {
                "timestamp": times[id(sample.timestamp)],
                "measurand": sample.measurand,
                "phase": sample.phase or None,
                "unit": sample.unit or None,
                "value": sample.value,
                "context": sample.context,
                "location": sample.location,
            }
            for sample in samples
        ],
    }
    return _event(charge_point_id, EventType.METER_VALUES, at, data)


def session(
    event_type: EventType, facts: SessionFacts, *, at: datetime, stop_reason: str | None = None
) -> Event:
    """session.started / session.updated / session.stopped with an OCPI 2.2.1 Session, and
    the platform's `status` and `reason` (docs/events.md, "Naming")."""
    model = Session.model_validate(ocpi.build_session(facts, last_updated=at))
    data = {
        "transactionId": facts.transaction_id,
        **_session_naming(facts, stopped=event_type == EventType.SESSION_STOPPED, stop=stop_reason),
        "ocpi": to_json_dict(model),
    }
    return _event(facts.charge_point_id, event_type, at, data)


def _session_naming(facts: SessionFacts, *, stopped: bool, stop: str | None) -> dict[str, Any]:
    status, reason = notifications.session_status(stopped=stopped, authorized=not facts.invalid)
    if stopped and reason is None:
        reason = notifications.stop_reason(stop)
    return {"status": status.value, "reason": reason}


def session_updated(facts: SessionFacts, *, at: datetime) -> Event:
    """session.updated for a MeterValues: the same Session as `session`, not validated again.

    This runs on every MeterValues, where the pydantic round trip cost more than the rest
    of the event. The facts are those session.started was validated with; only the
    register, and so kwh, the charging periods and last_updated, move. Tests check that
    this equals the validated form (tests/events/test_build.py).
    """
    data = {
        "transactionId": facts.transaction_id,
        **_session_naming(facts, stopped=False, stop=None),
        "ocpi": ocpi_json(ocpi.build_session(facts, last_updated=at)),
    }
    return _event(facts.charge_point_id, EventType.SESSION_UPDATED, at, data)


_JSON_SCALARS = frozenset({str, int, float, bool})


def ocpi_json(value: Any) -> Any:
    """OCPI data as its model would dump it: UTC DateTimes, numbers as floats, no nulls."""
    if type(value) in _JSON_SCALARS:  # most values: no isinstance chain
        return value
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


def cdr_created(
    facts: SessionFacts,
    *,
    party: Party,
    location: ocpi.CdrLocationFacts | None,
    at: datetime,
    remark: str | None,
) -> Event:
    """cdr.created with an OCPI 2.2.1 CDR and an OICP 2.3 ChargeDetailRecord.

    Without a location for the charger there is no OCPI CdrLocation to give, so `ocpi`
    is null until the charge point is linked to a location (PUT /charge-points/{id}).
    """
    the_evse_id = evse_id(party, facts.charge_point_id, facts.connector_id)
    ocpi_part: dict[str, Any] | None = None
    if location is not None:
        model = Cdr.model_validate(
            ocpi.build_cdr(
                facts,
                cdr_id=f"{facts.transaction_id}",
                location=location,
                total_cost=ocpi.PriceFacts(excl_vat=Decimal(0)),
                last_updated=at,
                remark=remark,
            )
        )
        ocpi_part = to_json_dict(model)
    data = {
        "transactionId": facts.transaction_id,
        "ocpi": ocpi_part,
        "oicp": _oicp_cdr(facts, evse_id=the_evse_id),
    }
    return _event(facts.charge_point_id, EventType.CDR_CREATED, at, data)


def _oicp_cdr(facts: SessionFacts, *, evse_id: str) -> dict[str, Any] | None:
    """The OICP ChargeDetailRecord, or None when the idTag cannot identify the driver there.

    OICP 2.3 §IdentificationType accepts an RFID UID (8, 14 or 20 hex digits) or an EvcoID;
    other idTags (e.g. "CARD-0001") cannot be sent to Hubject.
    """
    try:
        record = oicp.build_charge_detail_record(
            facts,
            session_id=str(uuid.uuid5(_UID_NAMESPACE, f"session:{facts.transaction_id}")),
            evse_id=evse_id,
        )
    except ValueError as exc:
        log.info("oicp_cdr_skipped", transaction_id=facts.transaction_id, reason=str(exc))
        return None
    return to_json_dict(ChargeDetailRecord.model_validate(record))


# -- commands and reservations -------------------------------------------------------------


def command_completed(
    charge_point_id: str,
    *,
    action: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    error: dict[str, str] | None,
    at: datetime,
) -> Event:
    data: dict[str, Any] = {"action": action, "request": request}
    if error is None:
        data["response"] = response
    else:
        data["error"] = error
    return _event(charge_point_id, EventType.COMMAND_COMPLETED, at, data)


def reservation_status(
    charge_point_id: str,
    *,
    reservation_id: int,
    connector_id: int,
    id_tag: str,
    status: str,
    at: datetime,
) -> Event:
    data = {
        "reservationId": reservation_id,
        "connectorId": connector_id,
        "idTag": id_tag,
        "status": status,
    }
    return _event(charge_point_id, EventType.RESERVATION_STATUS, at, data)


def _jsonable(value: Any) -> Any:
    """Datetimes as RFC 3339 UTC 'Z' text, recursively (the outbox stores plain JSON)."""
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


# -- locations -----------------------------------------------------------------------------

# What a connector is when its charger says nothing else: a Type 2 socket, three-phase.
DEFAULT_CONNECTOR_SPEC: dict[str, Any] = {
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 32,
}


def ocpi_location(
    *,
    location_id: str,
    data: dict[str, Any],
    last_updated: datetime,
    party: Party,
    chargers: Sequence[ChargerAtLocation],
) -> dict[str, Any]:
    """The full OCPI 2.2.1 Location: the operator's data plus one EVSE per charger connector.

    Raises:
        pydantic.ValidationError: the data is not a valid OCPI Location.
    """
    evses = [
        _evse(party, charger, connector_id, status, updated or last_updated)
        for charger in chargers
        for connector_id, status, updated in charger.connectors
        if connector_id >= 1
    ]
    full = {
        "country_code": party.country_code,
        "party_id": party.party_id,
        **data,
        "id": location_id,
        "last_updated": last_updated,
    }
    if evses:
        full["evses"] = evses
    model = Location.model_validate_json(orjson.dumps(_jsonable(full)))
    return to_json_dict(model)


def _evse(
    party: Party,
    charger: ChargerAtLocation,
    connector_id: int,
    status: str | None,
    updated: datetime,
) -> dict[str, Any]:
    spec = {**DEFAULT_CONNECTOR_SPEC, **(charger.connector_spec or {})}
    return {
        "uid": evse_uid(charger.charge_point_id, connector_id),
        "evse_id": evse_id(party, charger.charge_point_id, connector_id),
        "status": ocpi.ocpi_evse_status(status, online=charger.online),
        "connectors": [{"id": "1", **spec, "last_updated": updated}],
        "last_updated": updated,
    }


def cdr_location(
    location: dict[str, Any],
    *,
    party: Party,
    charge_point_id: str,
    connector_id: int,
    connector_spec: dict[str, Any] | None,
) -> ocpi.CdrLocationFacts:
    """The CDR's location snapshot from a stored OCPI Location."""
    spec = {**DEFAULT_CONNECTOR_SPEC, **(connector_spec or {})}
    return ocpi.CdrLocationFacts(
        address=location["address"],
        city=location["city"],
        country=location["country"],
        latitude=location["coordinates"]["latitude"],
        longitude=location["coordinates"]["longitude"],
        evse_id=evse_id(party, charge_point_id, connector_id),
        connector_standard=ocpi.ConnectorType(spec["standard"]),
        connector_format=ocpi.ConnectorFormat(spec["format"]),
        connector_power_type=ocpi.PowerType(spec["power_type"]),
        name=location.get("name"),
        postal_code=location.get("postal_code"),
        state=location.get("state"),
    )


def location_updated(location: dict[str, Any], *, at: datetime) -> Event:
    """`location.updated` with the full OCPI Location.

    The contract's topic has a charge point level; a location is published under its own
    id there (`{prefix}/events/{locationId}/location.updated`).
    """
    return _event(location["id"], EventType.LOCATION_UPDATED, at, {"ocpi": location})


# -- security ------------------------------------------------------------------------------


def security_event(facts: SecurityEventFacts) -> Event:
    """`security.event`: `facts.kind` is the SecWP §8 type (e.g. "StartupOfTheDevice").

    Its time is when it happened: the charger's timestamp, or csms's time for its own events.
    """
    data: dict[str, Any] = {
        "type": facts.kind,
        "timestamp": format_utc(facts.timestamp),
        "source": facts.source.value,
    }
    if facts.tech_info is not None:
        data["techInfo"] = facts.tech_info
    if facts.remote_address is not None:
        data["remoteAddress"] = facts.remote_address
    return _event(facts.charge_point_id, EventType.SECURITY_EVENT, facts.timestamp, data)


# -- webhooks ------------------------------------------------------------------------------


def webhook_failing(
    subscription_id: str,
    *,
    at: datetime,
    event_id: str,
    attempts: int,
    status_code: int | None,
    error: str | None,
) -> Event:
    """`webhook.failing`: a delivery failed its last scheduled attempt (docs/webhooks.md).

    Published under the subscription's id (`{prefix}/events/{webhookId}/webhook.failing`,
    source `/webhooks/{webhookId}`). The URL is left out: it may carry a token.
    """
    data = {
        "webhookId": subscription_id,
        "eventId": event_id,
        "attempts": attempts,
        "statusCode": status_code,
        "error": error,
    }
    return _event(subscription_id, EventType.WEBHOOK_FAILING, at, data)
