"""Strict pydantic models of the OCPI 2.2.1 objects csms exchanges as a CPO with partners.

The companion of ``models_ocpi.py`` (Location, Session, CDR, Tariff), for the rest of the
exchange: the response envelope, versions and credentials, Token and AuthorizationInfo,
and the Commands module. Written from ``ocpi/ocpi`` tag ``2.2.1``: transport_and_format
§Response format, version_information_endpoint, credentials, mod_tokens, mod_commands,
mod_sessions §ChargingPreferences. The same strictness applies (unknown fields refused,
spec lengths and enums), with one difference for what partners send: a DateTime without
a zone designator is read as UTC, as types §DateTime says ("The absence of the timezone
designator implies a UTC timestamp"). What csms writes always ends in ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, ValidationInfo

from csms.core.roaming import (
    AllowedType,
    CommandResponseType,
    CommandResultType,
    InterfaceRole,
    ModuleID,
    ProfileType,
    Role,
    VersionNumber,
    WhitelistType,
)
from csms.core.roaming_hub import ConnectionStatus
from csms.core.session import TokenType
from csms.events.models_base import StrictModel, format_datetime, to_utc
from csms.events.models_ocpi import (
    BusinessDetails,
    CiString36,
    CountryCode,
    DisplayText,
    Number,
    PartyId,
    String64,
    String255,
    Url,
)

__all__ = [
    "AuthorizationInfo",
    "CancelReservation",
    "ChargingPreferences",
    "ClientInfo",
    "CommandResponse",
    "CommandResult",
    "Credentials",
    "CredentialsRole",
    "Endpoint",
    "EnergyContract",
    "LocationReferences",
    "ReserveNow",
    "Response",
    "StartSession",
    "StopSession",
    "Token",
    "UnlockConnector",
    "Version",
    "VersionDetails",
]

_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z?")


def parse_ocpi_datetime(value: Any, info: ValidationInfo | None = None) -> Any:
    """types §DateTime from JSON: RFC 3339 without offset, ``Z`` optional (UTC either way).

    "+00:00 is not the same as UTC": offsets are refused. Python input passes through.
    """
    if info is not None and info.mode != "json":
        return value
    if not isinstance(value, str):
        return value
    if not _DATETIME_TEXT.fullmatch(value):
        raise ValueError("an OCPI DateTime is UTC: YYYY-MM-DDTHH:MM:SS[.fff][Z]")
    return datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=UTC)


DateTime = Annotated[
    datetime,
    BeforeValidator(parse_ocpi_datetime),
    AfterValidator(to_utc),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
# credentials §Credentials object: token is string(64), "ASCII only", not encoded.
CredentialsToken = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7E]+$")]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]


# --- transport_and_format --------------------------------------------------------------------


class Response(StrictModel):
    """transport_and_format §Response format: the envelope of every OCPI response."""

    data: Any = None
    status_code: Annotated[int, Field(ge=1000, le=4999)]
    status_message: String255 | None = None
    timestamp: DateTime


# --- version_information_endpoint ----------------------------------------------------------


class Version(StrictModel):
    """version_information_endpoint §Version class."""

    version: VersionNumber
    url: Url


class Endpoint(StrictModel):
    """version_information_endpoint §Endpoint class."""

    identifier: ModuleID
    role: InterfaceRole
    url: Url


class VersionDetails(StrictModel):
    """version_information_endpoint §Version details endpoint, Data."""

    version: VersionNumber
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]


# --- credentials ---------------------------------------------------------------------------


class CredentialsRole(StrictModel):
    """credentials §CredentialsRole class."""

    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode


class Credentials(StrictModel):
    """credentials §Credentials object."""

    token: CredentialsToken
    url: Url
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]


# --- mod_hub_client_info -------------------------------------------------------------------


class ClientInfo(StrictModel):
    """mod_hub_client_info §ClientInfo Object: a party connected to a hub."""

    party_id: PartyId
    country_code: CountryCode
    role: Role
    status: ConnectionStatus
    last_updated: DateTime


# --- mod_tokens ----------------------------------------------------------------------------


class EnergyContract(StrictModel):
    """mod_tokens §EnergyContract class."""

    supplier_name: String64
    contract_id: String64 | None = None


class Token(StrictModel):
    """mod_tokens §Token Object."""

    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: String64 | None = None
    issuer: String64
    group_id: CiString36 | None = None
    valid: bool
    whitelist: WhitelistType
    language: Language | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class LocationReferences(StrictModel):
    """mod_tokens §LocationReferences class."""

    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class AuthorizationInfo(StrictModel):
    """mod_tokens §AuthorizationInfo Object: the answer to a real-time authorization."""

    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: DisplayText | None = None


# --- mod_sessions --------------------------------------------------------------------------


class ChargingPreferences(StrictModel):
    """mod_sessions §ChargingPreferences Object."""

    profile_type: ProfileType
    departure_time: DateTime | None = None
    energy_need: Number | None = None
    discharge_allowed: bool | None = None


# --- mod_commands --------------------------------------------------------------------------


class CommandResponse(StrictModel):
    """mod_commands §CommandResponse Object: the CPO's immediate answer."""

    result: CommandResponseType
    timeout: Annotated[int, Field(ge=0)]
    message: list[DisplayText] | None = None


class CommandResult(StrictModel):
    """mod_commands §CommandResult Object: POSTed to the response_url later."""

    result: CommandResultType
    message: list[DisplayText] | None = None


class StartSession(StrictModel):
    """mod_commands §StartSession Object."""

    response_url: Url
    token: Token
    location_id: CiString36
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StopSession(StrictModel):
    """mod_commands §StopSession Object."""

    response_url: Url
    session_id: CiString36


class ReserveNow(StrictModel):
    """mod_commands §ReserveNow Object."""

    response_url: Url
    token: Token
    expiry_date: DateTime
    reservation_id: CiString36
    location_id: CiString36
    evse_uid: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class CancelReservation(StrictModel):
    """mod_commands §CancelReservation Object."""

    response_url: Url
    reservation_id: CiString36


class UnlockConnector(StrictModel):
    """mod_commands §UnlockConnector Object."""

    response_url: Url
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36


COMMAND_BODIES: dict[str, type[StrictModel]] = {
    "START_SESSION": StartSession,
    "STOP_SESSION": StopSession,
    "RESERVE_NOW": ReserveNow,
    "CANCEL_RESERVATION": CancelReservation,
    "UNLOCK_CONNECTOR": UnlockConnector,
}
