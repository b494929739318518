"""OCPI Session and CDR objects built from the plain facts of a session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from csms.core.ocpi.enums import ConnectorFormat, ConnectorType, PowerType, SessionStatus
from csms.core.ocpi.evse import evse_uid_or_derived
from csms.core.ocpi.periods import (
    DEFAULT_PERIOD,
    build_charging_periods,
    hours_between,
    round_number,
    session_energy_kwh,
    wh_to_kwh,
)
from csms.core.session import (
    SessionFacts,
    TokenFacts,
)

# --- facts: the plain inputs of the Session and CDR builders ---------------------------------


@dataclass(frozen=True)
class CdrLocationFacts:
    """Location, EVSE and connector master data as they were at the start of the session.

    mod_cdrs §CDR Object: "Location, EVSE, Tariffs and Token as they were *at the start*
    of the charging session". Coordinates are OCPI GeoLocation strings.
    """

    address: str
    city: str
    country: str
    latitude: str
    longitude: str
    evse_id: str
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType
    name: str | None = None
    postal_code: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class PriceFacts:
    """types §Price: ``excl_vat`` required, ``incl_vat`` optional, in the CDR's currency."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True)
class PricedCdrParts:
    """What a tariff adds to a CDR (mod_cdrs §CDR Object): the Tariff objects, the priced
    ChargingPeriods, the cost lines by field name (``total_fixed_cost``...) and the
    parking time in hours."""

    # OCPI Tariff objects: JSON dicts, or what the CDR's validator takes for them.
    tariffs: Sequence[Any]
    charging_periods: Sequence[dict[str, Any]]
    cost_lines: dict[str, PriceFacts]
    total_parking_h: Decimal


# --- Session and CDR -------------------------------------------------------------------------


def evse_uid_of(facts: SessionFacts) -> str:
    """The OCPI EVSE uid of the session's connector: its own, or the one its Location and
    statuses use (derived when the identity is too long)."""
    if facts.evse_uid is not None:
        return facts.evse_uid
    return evse_uid_or_derived(facts.charge_point_id, facts.connector_id)


def build_cdr_token(facts: SessionFacts) -> dict[str, Any]:
    """mod_cdrs §CdrToken: ``uid`` is the idTag; the rest from ``facts.token`` or the CPO."""
    token = facts.token or TokenFacts(
        country_code=facts.country_code, party_id=facts.party_id, contract_id=facts.id_tag
    )
    return {
        "country_code": token.country_code,
        "party_id": token.party_id,
        "uid": facts.id_tag,
        "type": token.type,
        "contract_id": token.contract_id,
    }


def session_status(facts: SessionFacts) -> SessionStatus:
    """ACTIVE until stopped, then COMPLETED; INVALID when the start was not accepted."""
    if facts.invalid:
        return SessionStatus.INVALID
    return SessionStatus.ACTIVE if facts.stop is None else SessionStatus.COMPLETED


def build_price(price: PriceFacts) -> dict[str, Any]:
    """types §Price: the numbers rounded to 4 decimals, ``incl_vat`` only when known."""
    out: dict[str, Any] = {"excl_vat": round_number(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = round_number(price.incl_vat)
    return out


def build_session(
    facts: SessionFacts,
    *,
    last_updated: datetime,
    total_cost: PriceFacts | None = None,
    period: timedelta = DEFAULT_PERIOD,
    charging_periods: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OCPI 2.2.1 Session (mod_sessions §Session Object) for ``session.*`` events.

    ``kwh`` is the energy so far (session_energy_kwh). ``total_cost`` is left out unless
    given: "When omitted … it does not imply the session is/was free of charge".
    ``charging_periods``, when given (a priced session's, with ``tariff_id``), replace
    the periods made from the samples.
    """
    session: dict[str, Any] = {
        "country_code": facts.country_code,
        "party_id": facts.party_id,
        "id": facts.session_id,
        "start_date_time": facts.start,
    }
    if facts.stop is not None:
        session["end_date_time"] = facts.stop
    session["kwh"] = session_energy_kwh(facts)
    session["cdr_token"] = build_cdr_token(facts)
    session["auth_method"] = facts.auth_method
    if facts.authorization_reference is not None:
        session["authorization_reference"] = facts.authorization_reference
    session["location_id"] = facts.location_id
    session["evse_uid"] = evse_uid_of(facts)
    session["connector_id"] = facts.ocpi_connector_id
    if facts.meter_id is not None:
        session["meter_id"] = facts.meter_id
    session["currency"] = facts.currency
    periods = (
        charging_periods
        if charging_periods is not None
        else build_charging_periods(facts, period=period)
    )
    if periods:
        session["charging_periods"] = periods
    if total_cost is not None:
        session["total_cost"] = build_price(total_cost)
    session["status"] = session_status(facts)
    session["last_updated"] = last_updated
    return session


def build_cdr_location(facts: SessionFacts, location: CdrLocationFacts) -> dict[str, Any]:
    """mod_cdrs §CdrLocation: the snapshot plus the session's location/EVSE/connector ids."""
    out: dict[str, Any] = {"id": facts.location_id}
    if location.name is not None:
        out["name"] = location.name
    out["address"] = location.address
    out["city"] = location.city
    if location.postal_code is not None:
        out["postal_code"] = location.postal_code
    if location.state is not None:
        out["state"] = location.state
    out["country"] = location.country
    out["coordinates"] = {"latitude": location.latitude, "longitude": location.longitude}
    out["evse_uid"] = evse_uid_of(facts)
    out["evse_id"] = location.evse_id
    out["connector_id"] = facts.ocpi_connector_id
    out["connector_standard"] = location.connector_standard
    out["connector_format"] = location.connector_format
    out["connector_power_type"] = location.connector_power_type
    return out


def build_cdr(
    facts: SessionFacts,
    *,
    cdr_id: str,
    location: CdrLocationFacts,
    total_cost: PriceFacts,
    last_updated: datetime,
    remark: str | None = None,
    period: timedelta = DEFAULT_PERIOD,
    priced: PricedCdrParts | None = None,
) -> dict[str, Any]:
    """An OCPI 2.2.1 CDR (mod_cdrs §CDR Object) for ``cdr.created``.

    With ``priced`` (a session priced with a tariff), the CDR carries that tariff in
    ``tariffs``, its priced charging periods (with ``tariff_id``), the cost lines and
    ``total_parking_time``.

    ``total_energy`` = (meterStop - meterStart)/1000 kWh, ``total_time`` = (stop - start)
    in hours, ``charging_periods`` as build_charging_periods(for_cdr=True). ``cdr_id``
    is never reused (≤ 36 characters for a normal CDR); ``total_cost``, required by
    mod_cdrs §CDR Object, comes from the tariff (``{excl_vat: 0}`` with a free-of-charge
    tariff when free, as in mod_tariffs §Free of Charge Tariff example).
    ``remark`` is a good home for StopTransaction.reason.

    Raises:
        ValueError: the transaction has not stopped, has no meterStop, or stops
            before it starts.
    """
    if facts.stop is None or facts.meter_stop_wh is None:
        raise ValueError(f"transaction {facts.transaction_id} has not stopped")
    if facts.stop < facts.start:
        raise ValueError(f"transaction {facts.transaction_id} stops before it starts")
    cdr: dict[str, Any] = {
        "country_code": facts.country_code,
        "party_id": facts.party_id,
        "id": cdr_id,
        "start_date_time": facts.start,
        "end_date_time": facts.stop,
        "session_id": facts.session_id,
        "cdr_token": build_cdr_token(facts),
        # mod_cdrs: "The last method SHALL be used in the CDR."
        "auth_method": facts.auth_method,
    }
    if facts.authorization_reference is not None:
        cdr["authorization_reference"] = facts.authorization_reference
    cdr["cdr_location"] = build_cdr_location(facts, location)
    if facts.meter_id is not None:
        cdr["meter_id"] = facts.meter_id
    cdr["currency"] = facts.currency
    if priced is not None:
        cdr["tariffs"] = list(priced.tariffs)
        cdr["charging_periods"] = list(priced.charging_periods)
    else:
        cdr["charging_periods"] = build_charging_periods(facts, period=period, for_cdr=True)
    cdr["total_cost"] = build_price(total_cost)
    cdr["total_energy"] = wh_to_kwh(facts.meter_stop_wh - facts.meter_start_wh)
    cdr["total_time"] = hours_between(facts.start, facts.stop)
    if priced is not None:
        cdr.update({name: build_price(price) for name, price in priced.cost_lines.items()})
        cdr["total_parking_time"] = round_number(priced.total_parking_h)
    if remark is not None:
        cdr["remark"] = remark
    cdr["last_updated"] = last_updated
    return cdr
