"""The OCPI 2.2.1 exchange's enums, status codes and the modules csms serves as a CPO.

Spec: ``ocpi/ocpi`` tag ``2.2.1`` (version_information_endpoint, status_codes, credentials).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

VERSION = "2.2.1"

# --- enums -----------------------------------------------------------------------------------


class Role(StrEnum):
    """types §Role enum."""

    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class InterfaceRole(StrEnum):
    """version_information_endpoint §InterfaceRole enum."""

    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class ModuleID(StrEnum):
    """version_information_endpoint §ModuleID enum."""

    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class VersionNumber(StrEnum):
    """version_information_endpoint §VersionNumber enum."""

    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"


class WhitelistType(StrEnum):
    """mod_tokens §WhitelistType enum."""

    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class AllowedType(StrEnum):
    """mod_tokens §AllowedType enum."""

    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class ProfileType(StrEnum):
    """mod_sessions §ProfileType enum."""

    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class ChargingPreferencesResponse(StrEnum):
    """mod_sessions §ChargingPreferencesResponse enum."""

    ACCEPTED = "ACCEPTED"
    DIFFERENT_ARRIVAL_TIME = "DIFFERENT_ARRIVAL_TIME"
    DIFFERENT_CHARGING_TIME = "DIFFERENT_CHARGING_TIME"
    NO_CHARGING_PREFERENCES = "NO_CHARGING_PREFERENCES"
    NOT_POSSIBLE = "NOT_POSSIBLE"


class CommandType(StrEnum):
    """mod_commands §CommandType enum."""

    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    """mod_commands §CommandResponseType enum: the CPO's immediate answer."""

    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    """mod_commands §CommandResultType enum: what the charger did."""

    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class OcpiStatus(IntEnum):
    """status_codes §1xxx-3xxx: the content-level status of every OCPI response."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    CLIENT_API_UNUSABLE = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


def is_success(status: int) -> bool:
    """status_codes: 1xxx is success, anything else is an error."""
    return 1000 <= status <= 1999


class PartnerState(StrEnum):
    """Where the credentials handshake with a partner stands (docs/ocpi.md, "Partners")."""

    PENDING = "pending"
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"


# The modules csms implements as a CPO, and its side of each.
OUR_ENDPOINTS: tuple[tuple[ModuleID, InterfaceRole], ...] = (
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER),
    (ModuleID.LOCATIONS, InterfaceRole.SENDER),
    (ModuleID.SESSIONS, InterfaceRole.SENDER),
    (ModuleID.CDRS, InterfaceRole.SENDER),
    (ModuleID.TARIFFS, InterfaceRole.SENDER),
    (ModuleID.TOKENS, InterfaceRole.RECEIVER),
    (ModuleID.COMMANDS, InterfaceRole.RECEIVER),
    (ModuleID.HUB_CLIENT_INFO, InterfaceRole.RECEIVER),
)
