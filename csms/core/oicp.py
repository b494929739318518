"""OCPP 1.6 -> Hubject OICP 2.3 (CPO side): EvseStatus mapping and ChargeDetailRecord builder.

Pure like csms/core/ocpi/, and for the same reason it returns plain dicts keyed by the
spec's field names (PascalCase), with ``Decimal``, aware ``datetime`` and the enums of
this module as values; ``csms/events/models_oicp.py`` validates and serialises them.
The regular expressions of the OICP restricted string types live here so that the
builders and the models check the same patterns.

Spec: ``hubject/oicp`` ``OICP-2.3/OICP 2.3 CPO/02_CPO_Services_and_Operations.asciidoc``
(eRoamingPushEvseStatus_V2.1, eRoamingChargeDetailRecord_V2.2) and
``03_CPO_Data_Types.asciidoc``; the mapping decisions are stated in docs/events.md,
"Mapping decisions".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from csms.core.ocpi import PowerType
from csms.core.session import AuthMethod, SessionFacts, TokenType, import_register_wh

# --- restricted string types (03_CPO_Data_Types §Simple Restricted String Data Types) -------

EVSE_ID_PATTERN = (
    r"^(([A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9\*]{1,30})|(\+?[0-9]{1,3}\*[0-9]{3}\*[0-9\*]{1,32}))$"
)
OPERATOR_ID_PATTERN = r"^(([A-Za-z]{2}\*?[A-Za-z0-9]{3})|(\+?[0-9]{1,3}\*[0-9]{3}))$"
PROVIDER_ID_PATTERN = r"^([A-Za-z]{2}\-?[A-Za-z0-9]{3}|[A-Za-z]{2}[\*|-]?[A-Za-z0-9]{3})$"
EVCO_ID_PATTERN = (
    r"^(([A-Za-z]{2}\-?[A-Za-z0-9]{3}\-?C[A-Za-z0-9]{8}\-?[\d|A-Za-z])"
    r"|([A-Za-z]{2}[\*|\-]?[A-Za-z0-9]{3}[\*|\-]?[A-Za-z0-9]{6}[\*|\-]?[\d|X]))$"
)
UID_PATTERN = r"^([0-9A-F]{8,8}|[0-9A-F]{14,14}|[0-9A-F]{20,20})$"
SESSION_ID_PATTERN = r"^[A-Za-z0-9]{8}(-[A-Za-z0-9]{4}){3}-[A-Za-z0-9]{12}$"
HASH_VALUE_PATTERN = r"^[0-9A-Za-z\\.+/=\\$]{10,100}$"


# --- enums ----------------------------------------------------------------------------------


class OicpEvseStatus(StrEnum):
    """03_CPO_Data_Types §EvseStatusType."""

    AVAILABLE = "Available"
    RESERVED = "Reserved"
    OCCUPIED = "Occupied"
    OUT_OF_SERVICE = "OutOfService"
    # "does not exist within the Hubject database": a Hubject answer, never pushed by a CPO
    EVSE_NOT_FOUND = "EvseNotFound"
    UNKNOWN = "Unknown"


class ActionType(StrEnum):
    """02_CPO_Services_and_Operations §eRoamingPushEvseStatus Message, ``ActionType``."""

    FULL_LOAD = "fullLoad"
    UPDATE = "update"
    INSERT = "insert"
    DELETE = "delete"


class MeteringStatus(StrEnum):
    """03_CPO_Data_Types §MeteringStatusType."""

    START = "Start"
    PROGRESS = "Progress"
    END = "End"


class RfidType(StrEnum):
    """03_CPO_Data_Types §RFIDType."""

    MIFARE_CLS = "mifareCls"
    MIFARE_DES = "mifareDes"
    CALYPSO = "calypso"
    NFC = "nfc"
    MIFARE_FAMILY = "mifareFamily"


class HashFunction(StrEnum):
    """03_CPO_Data_Types §HashFunctionType."""

    BCRYPT = "Bcrypt"


class LegacyHashFunction(StrEnum):
    """03_CPO_Data_Types §LegacyHashDataType ``Function``."""

    MD5 = "MD5"
    SHA_1 = "SHA-1"


# --- EVSE status ----------------------------------------------------------------------------

# 03_CPO_Data_Types §EvseStatusType: Preparing..Finishing are all "busy"; Unavailable and
# Faulted are both "out of service and not available for charging" (docs/events.md,
# "Mapping decisions").
_BY_OCPP_STATUS = {
    "Available": OicpEvseStatus.AVAILABLE,
    "Preparing": OicpEvseStatus.OCCUPIED,
    "Charging": OicpEvseStatus.OCCUPIED,
    "SuspendedEV": OicpEvseStatus.OCCUPIED,
    "SuspendedEVSE": OicpEvseStatus.OCCUPIED,
    "Finishing": OicpEvseStatus.OCCUPIED,
    "Reserved": OicpEvseStatus.RESERVED,
    "Unavailable": OicpEvseStatus.OUT_OF_SERVICE,
    "Faulted": OicpEvseStatus.OUT_OF_SERVICE,
}


def oicp_evse_status(ocpp_status: str | None, *, online: bool = True) -> OicpEvseStatus:
    """The OICP EvseStatus for a connector's OCPP status; Unknown when unknown or offline."""
    if not online or ocpp_status is None:
        return OicpEvseStatus.UNKNOWN
    return _BY_OCPP_STATUS.get(ocpp_status, OicpEvseStatus.UNKNOWN)


def build_evse_status_record(
    *, evse_id: str, ocpp_status: str | None, online: bool = True
) -> dict[str, Any]:
    """03_CPO_Data_Types §EvseStatusRecordType ``{EvseID, EvseStatus}`` (both mandatory)."""
    return {"EvseID": evse_id, "EvseStatus": oicp_evse_status(ocpp_status, online=online)}


# --- ChargeDetailRecord ---------------------------------------------------------------------

# eRoamingChargeDetailRecord: energies are "Decimal (,3)" kWh.
_THREE_PLACES = Decimal("0.001")


def round_kwh(value: Decimal) -> Decimal:
    """An OICP energy: 3 decimals, half up."""
    return value.quantize(_THREE_PLACES, rounding=ROUND_HALF_UP)


def _kwh(wh: Decimal | int) -> Decimal:
    return round_kwh(Decimal(wh) / 1000)


def build_identification(facts: SessionFacts) -> dict[str, Any]:
    """03_CPO_Data_Types §IdentificationType: exactly one of the five options.

    - A remote start (``auth_method`` COMMAND) with an EvcoID contract ->
      ``RemoteIdentification`` ("For the Remote Authorization process, only the option
      RemoteIdentification MUST be used").
    - An idTag that is an RFID UID (8, 14 or 20 hex digits, upper-cased as Hubject
      does) -> ``RFIDMifareFamilyIdentification`` ("only the option
      RFIDMifareFamilyIdentification SHOULD be used" for RFID).
    - Otherwise an EvcoID contract -> ``RemoteIdentification``.

    Raises:
        ValueError: none of these applies, so the session cannot be sent to Hubject.
    """
    contract_id = facts.token.contract_id if facts.token is not None else None
    evco_id = contract_id if contract_id and re.fullmatch(EVCO_ID_PATTERN, contract_id) else None
    if facts.auth_method is AuthMethod.COMMAND and evco_id is not None:
        return {"RemoteIdentification": {"EvcoID": evco_id}}
    uid = facts.id_tag.upper()
    token_type = facts.token.type if facts.token is not None else TokenType.RFID
    if token_type is TokenType.RFID and re.fullmatch(UID_PATTERN, uid):
        return {"RFIDMifareFamilyIdentification": {"UID": uid}}
    if evco_id is not None:
        return {"RemoteIdentification": {"EvcoID": evco_id}}
    raise ValueError(f"id tag of transaction {facts.transaction_id} has no OICP identification")


_PRODUCT_BY_POWER_TYPE = {
    PowerType.AC_1_PHASE: "AC1",
    PowerType.AC_3_PHASE: "AC3",
    PowerType.DC: "DC",
}


def partner_product_id(power_type: PowerType) -> str | None:
    """The recommended ``PartnerProductID`` (AC1, AC3, DC) for a connector's power type.

    02_CPO_Services_and_Operations §Charge Detail Records Best Practices; OICP has no
    two-phase product (03_CPO_Data_Types §ProductIDType), so AC_2_PHASE* gives None: choose
    a product for it by policy.
    """
    return _PRODUCT_BY_POWER_TYPE.get(power_type)


def _local(value: datetime, tz: tzinfo | None) -> datetime:
    return value.astimezone(tz if tz is not None else UTC)


def build_charge_detail_record(
    facts: SessionFacts,
    *,
    session_id: str,
    evse_id: str,
    session_start: datetime | None = None,
    session_end: datetime | None = None,
    product_id: str | None = None,
    tz: tzinfo | None = None,
    meter_values_in_between: bool = False,
    hub_operator_id: str | None = None,
    hub_provider_id: str | None = None,
) -> dict[str, Any]:
    """An OICP 2.3 eRoamingChargeDetailRecord for ``cdr.created``.

    Args:
        facts: the stopped transaction.
        session_id: the Hubject ``SessionID`` (a GUID) of the process; one CDR per id.
        evse_id: the EVSE's ``EvseID``, the same value as OCPI ``evse_id``.
        session_start: when the session began (first user interaction, e.g. Preparing);
            defaults to the transaction start.
        session_end: when it ended (back to Available); defaults to the stop.
        product_id: ``PartnerProductID``, e.g. partner_product_id(power_type).
        tz: the charging station's time zone. The best practice asks for "the real time
            zone of the charging station" on the Session times; all times are given in
            it. None: UTC.
        meter_values_in_between: also list the register readings between start and
            stop (kWh) as ``MeterValueInBetween``.
        hub_operator_id: ``HubOperatorID``, when a hub operator applies.
        hub_provider_id: ``HubProviderID``, when a hub provider applies.

    ``ChargingStart``/``ChargingEnd`` are the StartTransaction/StopTransaction times;
    ``ConsumedEnergy`` = (meterStop - meterStart)/1000 kWh to 3 decimals, with
    ``MeterValueStart``/``MeterValueEnd`` the two registers (docs/events.md, "Mapping
    decisions").

    Raises:
        ValueError: the transaction has not stopped or has no OICP identification.
    """
    if facts.stop is None or facts.meter_stop_wh is None:
        raise ValueError(f"transaction {facts.transaction_id} has not stopped")
    cdr: dict[str, Any] = {
        "SessionID": session_id,
        "CPOPartnerSessionID": facts.session_id,
    }
    if product_id is not None:
        cdr["PartnerProductID"] = product_id
    cdr["EvseID"] = evse_id
    cdr["Identification"] = build_identification(facts)
    cdr["ChargingStart"] = _local(facts.start, tz)
    cdr["ChargingEnd"] = _local(facts.stop, tz)
    cdr["SessionStart"] = _local(session_start or facts.start, tz)
    cdr["SessionEnd"] = _local(session_end or facts.stop, tz)
    cdr["MeterValueStart"] = _kwh(facts.meter_start_wh)
    cdr["MeterValueEnd"] = _kwh(facts.meter_stop_wh)
    if meter_values_in_between:
        between = sorted(
            (s.timestamp, wh)
            for s in facts.samples
            if facts.start < s.timestamp < facts.stop and (wh := import_register_wh(s)) is not None
        )
        if between:
            cdr["MeterValueInBetween"] = {"meterValues": [_kwh(wh) for _, wh in between]}
    cdr["ConsumedEnergy"] = _kwh(facts.meter_stop_wh - facts.meter_start_wh)
    if hub_operator_id is not None:
        cdr["HubOperatorID"] = hub_operator_id
    if hub_provider_id is not None:
        cdr["HubProviderID"] = hub_provider_id
    return cdr
