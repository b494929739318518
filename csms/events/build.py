"""Events as docs/events.md spells them: one builder per type, facts in, validated Event out.

The OCPI and OICP parts go through the strict pydantic models here, so a wrong field name
or a naive timestamp fails a test, not a roaming partner, and what reaches the outbox is
plain JSON. Building an event never fails an OCPP answer: identifiers that cannot take the
OCPI/OICP form are replaced by stable derived ones.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson
import structlog

from csms.core import notifications, ocpi, oicp
from csms.core.charger import BootInfo, SecurityEventFacts
from csms.core.clock import format_utc
from csms.core.events import Event
from csms.core.meter import Sample
from csms.core.rates import margin
from csms.core.session import ChargerAtLocation, Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession, cdr_parts, cost_summary, ocpi_charging_periods
from csms.core.transactions import SessionEnd
from csms.events.envelope import EventType
from csms.events.models_base import format_datetime, to_json_dict, to_utc
from csms.events.models_ocpi import Cdr, EvseStatusUpdate, Location, Price, Session, Tariff
from csms.events.models_oicp import ChargeDetailRecord, EvseStatusRecord
from csms.events.ocpi_json import session_json

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
    return ocpi.evse_uid_or_derived(charge_point_id, connector_id)


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


def registration_status(
    charge_point_id: str, *, at: datetime, status: str, previous: str, decided_by: str | None
) -> Event:
    """`chargepoint.registration_status`: an operator accepted or rejected a charger
    (docs/events.md); `previous` is the status it had before."""
    data = {"status": status, "previousStatus": previous, "decidedBy": decided_by}
    return _event(charge_point_id, EventType.CHARGEPOINT_REGISTRATION_STATUS, at, data)


def booted(
    charge_point_id: str, *, at: datetime, info: BootInfo, boot_status: str = "Accepted"
) -> Event:
    """`chargepoint.booted`; `boot_status` is how csms answered (Accepted, Pending, Rejected)."""
    data = {
        "vendor": info.vendor,
        "model": info.model,
        "serialNumber": info.serial_number or info.charge_box_serial_number,
        "firmwareVersion": info.firmware_version,
        "bootStatus": boot_status,
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
    ocpi_part, oicp_part = _evse_status_parts(
        party, charge_point_id, connector_id, ocpp_status, online
    )
    data: dict[str, Any] = {
        "connectorId": connector_id,
        "ocppStatus": ocpp_status,
        "errorCode": error_code,
        "info": info,
        "vendorErrorCode": vendor_error_code,
        # As EvseStatusUpdate dumps its DateTime: UTC, RFC 3339; a naive time is refused.
        "ocpi": {**ocpi_part, "last_updated": format_datetime(to_utc(at))},
        "oicp": dict(oicp_part),
    }
    if vendor_error_text is not None:
        data["vendorErrorText"] = vendor_error_text
    subject = f"{charge_point_id}/{connector_id}"
    return _event(charge_point_id, EventType.EVSE_STATUS, at, data, subject)


# A validated evse.status part whose only changing field is the time: per EVSE and status.
_EVSE_STATUS_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=16_384)
def _evse_status_parts(
    party: Party, charge_point_id: str, connector_id: int, ocpp_status: str | None, online: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `ocpi` part of `evse.status` but its `last_updated`, and the `oicp` part, each
    validated by its strict model once per EVSE and status (four StatusNotifications a
    session; tests/events/test_build.py checks the result equals the validated event)."""
    ocpi_part = to_json_dict(
        EvseStatusUpdate.model_validate(
            ocpi.build_evse_status(
                evse_uid=evse_uid(charge_point_id, connector_id),
                ocpp_status=ocpp_status,
                online=online,
                last_updated=_EVSE_STATUS_EPOCH,
            )
        )
    )
    del ocpi_part["last_updated"]
    oicp_part = to_json_dict(
        EvseStatusRecord.model_validate(
            oicp.build_evse_status_record(
                evse_id=evse_id(party, charge_point_id, connector_id),
                ocpp_status=ocpp_status,
                online=online,
            )
        )
    )
    return ocpi_part, oicp_part


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
    values: list[dict[str, Any]] = []
    stamp: datetime | None = None
    text = ""
    for sample in samples:
        # The samples of one MeterValue share their timestamp (the same object): format
        # it once.
        if sample.timestamp is not stamp:
            stamp = sample.timestamp
            text = format_utc(stamp)
        values.append(
            {
                "timestamp": text,
                "measurand": sample.measurand,
                "phase": sample.phase or None,
                "unit": sample.unit or None,
                "value": sample.value,
                "context": sample.context,
                "location": sample.location,
            }
        )
    data = {"connectorId": connector_id, "transactionId": transaction_id, "sampledValues": values}
    return _event(charge_point_id, EventType.METER_VALUES, at, data)


def session(
    event_type: EventType,
    facts: SessionFacts,
    *,
    at: datetime,
    priced: PricedSession | None = None,
    reason: str | None = None,
) -> Event:
    """session.started / session.updated with an OCPI 2.2.1 Session, and the platform's
    `status` and `reason` (docs/events.md, "Naming").

    A priced session also carries its cost so far: `cost` beside the Session and its
    `total_cost` and priced charging periods in it; `reason`, when given, says why csms
    acted on it (`balance_exceeded`).
    """
    model = Session.model_validate(_session_ocpi(facts, at=at, priced=priced))
    data = {
        "transactionId": facts.transaction_id,
        **_session_naming(facts, stopped=event_type == EventType.SESSION_STOPPED, stop=None),
        "ocpi": to_json_dict(model),
    }
    _add_cost(data, facts, priced=priced, reason=reason)
    return _event(facts.charge_point_id, event_type, at, data)


def session_stopped(
    facts: SessionFacts,
    *,
    at: datetime,
    end: SessionEnd,
    stop_reason: str | None,
    priced: PricedSession | None = None,
) -> Event:
    """session.stopped: the COMPLETED Session, its `status`, why it ended, and the charger's
    Reason.

    `reason` is `forced` or `implicitly_ended` when csms ended the session itself; for the
    charger's own StopTransaction it is the OCPP 1.6 Reason in snake_case (`local`,
    `ev_disconnected`, ...; absent means Local, OCPP-J errata §2.6), or `not_authorized`,
    and `stopReason` carries the Reason as the charger sent it (§7.39). A priced session
    carries its final cost as `session` does.
    """
    naming = _session_naming(facts, stopped=True, stop=stop_reason)
    if end is not SessionEnd.CHARGER:
        naming["reason"] = end.value
    data: dict[str, Any] = {"transactionId": facts.transaction_id, **naming}
    if end is SessionEnd.CHARGER:
        data["stopReason"] = stop_reason or "Local"
    # Written directly as session.updated's is: the facts are those session.started was
    # validated with but the stop, a time `utc_text` refuses when naive, as the model did
    # (tests/events/test_build.py compares it with the validated Session byte for byte).
    data["ocpi"] = session_json(facts, at=at, priced=priced)
    _add_cost(data, facts, priced=priced, reason=None)
    return _event(facts.charge_point_id, EventType.SESSION_STOPPED, at, data)


def _session_naming(facts: SessionFacts, *, stopped: bool, stop: str | None) -> dict[str, Any]:
    status, reason = notifications.session_status(stopped=stopped, authorized=not facts.invalid)
    if stopped and reason is None:
        reason = notifications.stop_reason(stop)
    return {"status": status.value, "reason": reason}


def session_updated(
    facts: SessionFacts,
    *,
    at: datetime,
    priced: PricedSession | None = None,
    reason: str | None = None,
) -> Event:
    """session.updated for a MeterValues: the same Session as `session`, not validated again.

    This runs on every MeterValues, where the pydantic round trip cost more than the rest
    of the event. The facts are those session.started was validated with; only the
    register, and so kwh, the charging periods and last_updated, move. Tests check that
    this equals the validated form, and the generic `ocpi_json` form byte for byte
    (tests/events/test_build.py).
    """
    status, naming_reason = _running_naming(facts.invalid)
    data = {
        "transactionId": facts.transaction_id,
        "status": status,
        "reason": naming_reason,
        "ocpi": session_json(facts, at=at, priced=priced),
    }
    _add_cost(data, facts, priced=priced, reason=reason)
    return _event(facts.charge_point_id, EventType.SESSION_UPDATED, at, data)


@lru_cache(maxsize=2)
def _running_naming(invalid: bool) -> tuple[str, str | None]:
    # `_session_naming` of a session not stopped: it depends on the authorization alone.
    status, reason = notifications.session_status(stopped=False, authorized=not invalid)
    return status.value, reason


def _session_ocpi(
    facts: SessionFacts, *, at: datetime, priced: PricedSession | None
) -> dict[str, Any]:
    if priced is None:
        return ocpi.build_session(facts, last_updated=at)
    return ocpi.build_session(
        facts,
        last_updated=at,
        total_cost=priced.costs.total,
        charging_periods=ocpi_charging_periods(priced.costs),
    )


def _add_cost(
    data: dict[str, Any], facts: SessionFacts, *, priced: PricedSession | None, reason: str | None
) -> None:
    if priced is not None:
        data["tariffId"] = priced.tariff_id
        data["cost"] = _money_json(cost_summary(priced, currency=facts.currency))
    if reason is not None:
        data["reason"] = reason


def _money_json(value: dict[str, Any]) -> dict[str, Any]:
    return {key: float(item) if isinstance(item, Decimal) else item for key, item in value.items()}


def cdr_id(transaction_id: int, *, replacement: bool = False) -> str:
    """The OCPI CDR id: the transactionId; `-R` for the CDR replacing an estimated one."""
    return f"{transaction_id}-R" if replacement else str(transaction_id)


def cdr_created(
    facts: SessionFacts,
    *,
    party: Party,
    location: ocpi.CdrLocationFacts | None,
    at: datetime,
    remark: str | None,
    end: SessionEnd,
    estimated: bool = False,
    replaces: str | None = None,
    priced: PricedSession | None = None,
    parking_s: int = 0,
    purchase_cost: Decimal | None = None,
) -> Event:
    """cdr.created: the summary fields, an OCPI 2.2.1 CDR and an OICP 2.3 ChargeDetailRecord.

    Without a location for the charger there is no OCPI CdrLocation to give, so `ocpi`
    is null until the charge point is linked to a location (PUT /charge-points/{id}); the
    summary fields (docs/events.md) are always there. `estimated` is a CDR from what csms
    knew when it ended the session itself; `replaces` names the estimated CDR this one
    replaces, after its credit. A priced session's CDR carries its tariff, priced charging
    periods and cost lines; OICP 2.3's ChargeDetailRecord has no price fields, so `oicp` is
    the same priced or not. `purchase_cost`, what the energy cost to buy, gives
    `purchaseCost` and `margin`, with a tariff or without (csms.core.rates.margin).
    """
    if facts.stop is None or facts.meter_stop_wh is None:
        raise ValueError(f"transaction {facts.transaction_id} has not stopped")
    the_cdr_id = cdr_id(facts.transaction_id, replacement=replaces is not None)
    the_evse_id = evse_id(party, facts.charge_point_id, facts.connector_id)
    ocpi_part: dict[str, Any] | None = None
    if location is not None:
        model = Cdr.model_validate(
            ocpi.build_cdr(
                facts,
                cdr_id=the_cdr_id,
                location=location,
                total_cost=ocpi.PriceFacts(excl_vat=Decimal(0))
                if priced is None
                else priced.costs.total,
                last_updated=at,
                remark=remark,
                priced=None if priced is None else _cdr_parts(priced),
            )
        )
        ocpi_part = to_json_dict(model)
    data: dict[str, Any] = {
        "transactionId": facts.transaction_id,
        "cdrId": the_cdr_id,
        "reason": end.value,
        "estimated": estimated,
        "credit": False,
        "chargePointId": facts.charge_point_id,
        "connectorId": facts.connector_id,
        "idTag": facts.id_tag,
        "start": format_utc(facts.start),
        "stop": format_utc(facts.stop),
        "energyWh": facts.meter_stop_wh - facts.meter_start_wh,
        "durationS": int((facts.stop - facts.start).total_seconds()),
        "parkingS": parking_s,
        "tariffId": None if priced is None else priced.tariff_id,
        "cost": _money_json(cost_summary(priced, currency=facts.currency)),
        "ocpi": ocpi_part,
        "oicp": _oicp_cdr(facts, evse_id=the_evse_id),
    }
    if replaces is not None:
        data["replacesCdrId"] = replaces
    if purchase_cost is not None:
        revenue = None if priced is None else priced.costs.total.excl_vat
        data["purchaseCost"] = float(purchase_cost)
        data["margin"] = float(margin(revenue, purchase_cost))
    return _event(facts.charge_point_id, EventType.CDR_CREATED, at, data)


def _cdr_parts(priced: PricedSession) -> ocpi.PricedCdrParts:
    # The stored Tariff is JSON: parsed as JSON, so the strict CDR model takes it as it is.
    parts = cdr_parts(priced)
    tariffs = [Tariff.model_validate_json(orjson.dumps(tariff)) for tariff in parts.tariffs]
    return replace(parts, tariffs=tariffs)


def cdr_credit(charge_point_id: str, first: dict[str, Any], *, at: datetime) -> Event:
    """cdr.created crediting an earlier CDR, from that CDR's event data.

    OCPI 2.2.1 mod_cdrs §Credit CDRs: a new id (the first's with `-C`), `credit` true,
    `credit_reference_id` the first's id, all of the first's data, and only `total_cost`
    negated (and with it the summary's `cost`, `purchaseCost` and `margin`). OICP 2.3 has
    no credit record, so `oicp` is null.
    """
    original_id = str(first["cdrId"])
    credit_id = f"{original_id}-C"
    ocpi_part: dict[str, Any] | None = None
    if first.get("ocpi") is not None:
        original = Cdr.model_validate_json(orjson.dumps(first["ocpi"]))
        credit = original.model_copy(
            update={
                "id": credit_id,
                "credit": True,
                "credit_reference_id": original.id,
                "total_cost": _negated(original.total_cost),
                "last_updated": at,
            }
        )
        # model_copy does not validate: round-trip so the credit meets the spec's rules too.
        ocpi_part = to_json_dict(Cdr.model_validate_json(credit.model_dump_json()))
    data = {
        **first,
        "cdrId": credit_id,
        "credit": True,
        "creditReferenceId": original_id,
        "ocpi": ocpi_part,
        "oicp": None,
    }
    data.pop("replacesCdrId", None)
    if isinstance(first.get("cost"), dict):
        data["cost"] = {
            key: _negated_amount(value) if key in ("exclVat", "inclVat") else value
            for key, value in first["cost"].items()
        }
    for key in ("purchaseCost", "margin"):
        if key in first:
            data[key] = _negated_amount(first[key])
    return _event(charge_point_id, EventType.CDR_CREATED, at, data)


def _negated_amount(value: Any) -> Any:
    # A zero stays 0, not -0; an unknown amount (null) stays unknown.
    if value is None:
        return None
    return 0 - value if value else value


def _negated(price: Price) -> Price:
    # Decimal(0) - x, not -x: a zero stays 0, not -0.
    return price.model_copy(
        update={
            "excl_vat": Decimal(0) - price.excl_vat,
            "incl_vat": None if price.incl_vat is None else Decimal(0) - price.incl_vat,
        }
    )


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


# -- wallets -------------------------------------------------------------------------------


def user_balance_changed(
    user_id: str,
    *,
    amount: Decimal,
    balance: Decimal,
    currency: str,
    kind: str,
    reason: str,
    reference: str,
    at: datetime,
) -> Event:
    """`user.balance_changed`, on topic `{prefix}/events/{userId}/user.balance_changed`."""
    data = {
        "userId": user_id,
        "direction": "credit" if amount >= 0 else "debit",
        "amount": float(abs(amount)),
        "balance": float(balance),
        "currency": currency,
        "kind": kind,
        "reason": reason,
        "reference": reference,
    }
    return _event(user_id, EventType.USER_BALANCE_CHANGED, at, data)


def user_subscription_changed(
    user_id: str,
    *,
    subscription_id: str,
    plan_id: str,
    status: str,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> Event:
    """`user.subscription_changed`: active, canceled or expired (renewal: active again)."""
    data = {
        "userId": user_id,
        "subscriptionId": subscription_id,
        "planId": plan_id,
        "status": status,
        "periodStart": format_utc(period_start),
        "periodEnd": format_utc(period_end),
    }
    return _event(user_id, EventType.USER_SUBSCRIPTION_CHANGED, at, data)


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

    The event topic has a charge point level; a location is published under its own id
    there (`{prefix}/events/{locationId}/location.updated`, docs/events.md, "Locations").
    """
    return _event(location["id"], EventType.LOCATION_UPDATED, at, {"ocpi": location})


def tariff_updated(tariff_id: str, tariff: dict[str, Any] | None, *, at: datetime) -> Event:
    """`tariff.updated`: a tariff was created or replaced (`ocpi` the OCPI 2.2.1 Tariff) or
    deleted (`deleted` true, `ocpi` null), under the tariff's id in the topic
    (`{prefix}/events/{tariffId}/tariff.updated`, docs/events.md). Roaming partners get it
    from here (docs/ocpi.md, "Tariffs")."""
    data = {"tariffId": tariff_id, "deleted": tariff is None, "ocpi": tariff}
    return _event(tariff_id, EventType.TARIFF_UPDATED, at, data)


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
