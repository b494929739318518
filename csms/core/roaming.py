"""OCPI 2.2.1 roaming as a CPO: the enums of the exchange and the pure decisions.

Who may call, what a partner is shown, how a partner's token authorizes a charger, and
how an OCPP answer becomes an OCPI command result. No I/O, no clock, no randomness:
times, tokens and stored state come in as arguments (docs/ocpi.md).

Spec: ``ocpi/ocpi`` tag ``2.2.1`` (transport_and_format, credentials,
version_information_endpoint, status_codes, types, mod_locations, mod_sessions, mod_cdrs,
mod_tokens, mod_commands).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from csms.core.authorize import AuthorizationStatus, IdTagInfo
from csms.core.session import AuthMethod, TokenType

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

# --- credentials tokens (transport_and_format §Authorization header) -------------------------

_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class PresentedToken:
    """One reading of an Authorization header: the credentials token, and whether it came
    Base64-encoded as OCPI 2.2.1 requires (False: the unencoded OCPI 2.1.1 form)."""

    token: str
    encoded: bool


def presented_tokens(header: str | None) -> list[PresentedToken]:
    """The credentials tokens an `Authorization: Token <...>` header may carry.

    transport_and_format §Authorization header: the parameter "contains the 'credentials
    token' Base64 encoded". Some partners still send it unencoded (OCPI 2.1.1); the caller
    accepts that reading only for partners configured so. Both readings are returned when
    the text is valid Base64 of printable ASCII, the encoded one first.
    """
    if header is None:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value or not _PRINTABLE.fullmatch(value):
        return []
    found = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if decoded and _PRINTABLE.fullmatch(decoded) and len(decoded) <= 64:
        found.append(PresentedToken(token=decoded, encoded=True))
    if len(value) <= 64:
        found.append(PresentedToken(token=value, encoded=False))
    return found


def authorization_header(token: str, *, unencoded: bool = False) -> str:
    """The Authorization header value for calling a partner with its token."""
    if unencoded:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode("ascii")).decode("ascii")


def token_digest(token: str) -> str:
    """How a credentials token is kept: SHA-256, hex. Tokens are random (32 bytes from
    csms, or the partner's own), so a fast hash suffices; the raw token is never stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_match(stored: str | None, presented: str) -> bool:
    """Constant-time comparison of a stored digest with a presented token's digest."""
    if not stored:
        return False
    return hmac.compare_digest(stored.encode("ascii"), presented.encode("ascii"))


def is_credentials_token(token: str) -> bool:
    """credentials §Credentials object: token is string(64), "ASCII only"; we also refuse
    whitespace, which an Authorization header cannot carry."""
    return 0 < len(token) <= 64 and bool(_PRINTABLE.fullmatch(token))


# --- what a partner is shown (mod_locations) -----------------------------------------------


@dataclass(frozen=True)
class LocationChoice:
    """One location an operator picked for a partner: None = every charger linked to it,
    now and later; a list = only those chargers' EVSEs (empty: none yet)."""

    location_id: str
    charge_point_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Selection:
    """Which locations a partner gets: `all` published ones, plus the explicit choices."""

    all_published: bool
    choices: Mapping[str, LocationChoice]


def is_published(location: Mapping[str, Any]) -> bool:
    """A location meant to be shared: `publish` true, or limited to `publish_allowed_to`.

    mod_locations §Location Object: with publish=false "only tokens identified in the field
    publish_allowed_to are allowed to be shown this Location"; the partner applies that
    rule, so such a location is sent with its flags. One with publish=false and no list
    is private (mod_locations §Flow and Lifecycle: "SHALL NOT be published via OCPI")
    unless the operator picks it explicitly.
    """
    return bool(location.get("publish")) or bool(location.get("publish_allowed_to"))


def is_selected(selection: Selection, location: Mapping[str, Any]) -> bool:
    """Whether the partner is to hold this location now."""
    if location["id"] in selection.choices:
        return True
    return selection.all_published and is_published(location)


def location_for_partner(
    location: Mapping[str, Any],
    *,
    choice: LocationChoice | None,
    charger_by_evse: Mapping[str, str],
    sent: Mapping[str, Any] | None,
    now: datetime | str,
) -> dict[str, Any]:
    """The Location to PUT to a partner: its chosen EVSEs, and those it held before marked
    REMOVED.

    mod_locations §Flow and Lifecycle: "When the CPO wants to delete an EVSE ..., they MUST
    update the EVSE's status field to REMOVED"; a PUT replaces the whole Location, so an
    EVSE sent before and not chosen now goes in with status REMOVED rather than silently
    missing. `charger_by_evse` maps each current EVSE uid to its charge point.
    """
    allowed = None if choice is None else set(choice.charge_point_ids or ())
    evses = [
        evse
        for evse in location.get("evses", ())
        if allowed is None or charger_by_evse.get(evse["uid"]) in allowed
    ]
    return _with_removed(location, evses=evses, sent=sent, now=now)


def withdrawn_location(
    location: Mapping[str, Any], *, sent: Mapping[str, Any] | None, now: datetime | str
) -> dict[str, Any]:
    """The last PUT of a location the partner should no longer show: every EVSE REMOVED.

    mod_locations §Flow and Lifecycle: "A Location without any valid EVSE object can be
    considered expired and should no longer be displayed"; there is no DELETE.
    """
    return _with_removed(location, evses=[], sent=sent, now=now)


def _with_removed(
    location: Mapping[str, Any],
    *,
    evses: Sequence[Mapping[str, Any]],
    sent: Mapping[str, Any] | None,
    now: datetime | str,
) -> dict[str, Any]:
    kept = {evse["uid"] for evse in evses}
    removed = [
        {**evse, "status": "REMOVED", "last_updated": now}
        for evse in (sent or {}).get("evses", ())
        if evse["uid"] not in kept and evse.get("status") != "REMOVED"
    ]
    # Already REMOVED before: repeat it, so the partner keeps seeing it gone.
    gone = [
        evse
        for evse in (sent or {}).get("evses", ())
        if evse["uid"] not in kept and evse.get("status") == "REMOVED"
    ]
    out = {key: value for key, value in location.items() if key != "evses"}
    all_evses = [*evses, *removed, *gone]
    if all_evses:
        out["evses"] = all_evses
    if removed:
        out["last_updated"] = now
    return out


def evse_uids(location: Mapping[str, Any] | None) -> frozenset[str]:
    """The uids of the EVSEs a Location holds that are not REMOVED."""
    if location is None:
        return frozenset()
    return frozenset(
        evse["uid"] for evse in location.get("evses", ()) if evse.get("status") != "REMOVED"
    )


def latest_update(location: Mapping[str, Any]) -> datetime:
    """The Location's last_updated as mod_locations §GET List needs it: "If an EVSE is
    updated, also the 'parent' Location's last_updated field needs to be updated"."""
    times = [location["last_updated"]]
    for evse in location.get("evses", ()):
        times.append(evse["last_updated"])
        times.extend(connector["last_updated"] for connector in evse.get("connectors", ()))
    return max(datetime.fromisoformat(text) for text in times)


# --- tokens and authorization (mod_tokens) --------------------------------------------------

_ID_TAG = re.compile(r"[\x20-\x7e]{1,20}")


def id_tag_for(*, country_code: str, party_id: str, uid: str, token_type: str) -> str:
    """The OCPP idTag a partner's token is known by at the charger.

    An RFID uid fits OCPP's IdToken (CiString20, OCPP 1.6 §7.28) and is what the reader
    sends, so it is used as is. A longer uid (APP_USER tokens are often UUIDs) gets a
    stable derived idTag of 20 characters for RemoteStartTransaction.
    """
    if _ID_TAG.fullmatch(uid):
        return uid
    digest = hashlib.sha256(f"{country_code}*{party_id}*{token_type}*{uid}".encode()).digest()
    return "OCPI" + base64.b32encode(digest).decode("ascii")[:16]


@dataclass(frozen=True)
class TokenState:
    """A partner's token as csms holds it (mod_tokens §Token Object)."""

    country_code: str
    party_id: str
    uid: str
    type: TokenType
    contract_id: str
    valid: bool
    whitelist: WhitelistType
    group_id: str | None = None


def asks_emsp(whitelist: WhitelistType) -> bool:
    """Whether csms asks the eMSP in real time (mod_tokens §WhitelistType enum).

    ALWAYS: "real-time authorization is not possible/allowed". ALLOWED: "The CPO may
    choose": csms asks, for the freshest answer, and falls back to its copy.
    ALLOWED_OFFLINE and NEVER: real-time authorization "shall be used".
    """
    return whitelist is not WhitelistType.ALWAYS


@dataclass(frozen=True)
class Authorization:
    """How csms decided on a partner's token: the OCPP answer, and what the Session and CDR
    say about it (mod_cdrs §AuthMethod enum, authorization_reference)."""

    info: IdTagInfo
    method: AuthMethod
    authorization_reference: str | None = None


def _info(token: TokenState, status: AuthorizationStatus) -> IdTagInfo:
    # OCPP 1.6 §7.24 parentIdTag is at most 20 characters; mod_tokens §Token Object:
    # group_id "is called parentId in OCPP 1.5/1.6".
    group = token.group_id if token.group_id and _ID_TAG.fullmatch(token.group_id) else None
    return IdTagInfo(status=status, parent_id_tag=group)


def whitelist_decision(token: TokenState) -> Authorization:
    """The answer from csms's copy of the token alone (whitelisting)."""
    status = AuthorizationStatus.ACCEPTED if token.valid else AuthorizationStatus.INVALID
    return Authorization(info=_info(token, status), method=AuthMethod.WHITELIST)


def unreachable_decision(token: TokenState) -> Authorization:
    """The answer when the eMSP did not answer in time (mod_tokens §WhitelistType enum).

    ALLOWED and ALLOWED_OFFLINE fall back to the copy ("when the CPO cannot get a response
    from the eMSP, the CPO shall allow this Token"; a token the eMSP marked invalid stays
    refused). NEVER: "Whitelisting is forbidden", so the token is refused.
    """
    if token.whitelist is WhitelistType.NEVER:
        return Authorization(
            info=_info(token, AuthorizationStatus.INVALID), method=AuthMethod.AUTH_REQUEST
        )
    return whitelist_decision(token)


_BY_ALLOWED = {
    AllowedType.ALLOWED: AuthorizationStatus.ACCEPTED,
    AllowedType.BLOCKED: AuthorizationStatus.BLOCKED,
    AllowedType.EXPIRED: AuthorizationStatus.EXPIRED,
    # OCPP 1.6 has no "no credit": the driver may not charge, as with a blocked card.
    AllowedType.NO_CREDIT: AuthorizationStatus.BLOCKED,
    AllowedType.NOT_ALLOWED: AuthorizationStatus.INVALID,
}


def real_time_decision(
    token: TokenState, *, allowed: AllowedType | None, authorization_reference: str | None
) -> Authorization:
    """The eMSP's answer to POST tokens/{uid}/authorize as an OCPP IdTagInfo.

    `allowed` None: the eMSP does not know the token (mod_tokens §POST: HTTP 404 or status
    2004 Unknown Token), which is Invalid.
    """
    status = AuthorizationStatus.INVALID if allowed is None else _BY_ALLOWED[allowed]
    return Authorization(
        info=_info(token, status),
        method=AuthMethod.AUTH_REQUEST,
        authorization_reference=authorization_reference,
    )


def command_decision(token: TokenState, *, authorization_reference: str | None) -> Authorization:
    """A token the eMSP sent with START_SESSION or RESERVE_NOW is accepted without asking.

    mod_commands §StartSession Object: "The Token provided by the eMSP for the StartSession
    SHALL be authorized by the eMSP before sending it to the CPO"; for RFID "the CPO SHALL
    NOT do a realtime authorization ... within 15 minutes after having received" it.
    """
    return Authorization(
        info=_info(token, AuthorizationStatus.ACCEPTED),
        method=AuthMethod.COMMAND,
        authorization_reference=authorization_reference,
    )


def earlier_decision(
    token: TokenState, *, method: AuthMethod, authorization_reference: str | None
) -> Authorization:
    """An Accepted authorization of the same token at the same charger moments ago stands
    for the StartTransaction that follows it (one use of the token, one decision)."""
    return Authorization(
        info=_info(token, AuthorizationStatus.ACCEPTED),
        method=method,
        authorization_reference=authorization_reference,
    )


def ended_partner_decision(token: TokenState) -> Authorization:
    """A token of a partner that is no longer registered: the roaming agreement ended, its
    drivers are refused (credentials §DELETE Method: "Both parties must end any automated
    communication")."""
    return Authorization(
        info=_info(token, AuthorizationStatus.INVALID), method=AuthMethod.WHITELIST
    )


# --- commands (mod_commands) -> OCPP 1.6 ----------------------------------------------------

COMMAND_WINDOW_SECONDS = 15 * 60
"""mod_commands §StartSession Object: no real-time authorization of the same RFID token at
the same charge point within 15 minutes of a START_SESSION (or RESERVE_NOW)."""

# What each OCPP answer status means for the command's result.
_RESULTS: dict[CommandType, dict[str, CommandResultType]] = {
    CommandType.START_SESSION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.REJECTED,
    },
    CommandType.STOP_SESSION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.REJECTED,
    },
    # OCPP 1.6 §7.39 ReservationStatus.
    CommandType.RESERVE_NOW: {
        "Accepted": CommandResultType.ACCEPTED,
        "Faulted": CommandResultType.EVSE_INOPERATIVE,
        "Occupied": CommandResultType.EVSE_OCCUPIED,
        "Rejected": CommandResultType.REJECTED,
        "Unavailable": CommandResultType.EVSE_INOPERATIVE,
    },
    # OCPP 1.6 §7.6 CancelReservationStatus: Rejected means "no reservation matching".
    CommandType.CANCEL_RESERVATION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.UNKNOWN_RESERVATION,
    },
    # OCPP 1.6 §7.43 UnlockStatus.
    CommandType.UNLOCK_CONNECTOR: {
        "Unlocked": CommandResultType.ACCEPTED,
        "UnlockFailed": CommandResultType.FAILED,
        "NotSupported": CommandResultType.NOT_SUPPORTED,
    },
}

OCPP_ACTIONS = {
    CommandType.START_SESSION: "RemoteStartTransaction",
    CommandType.STOP_SESSION: "RemoteStopTransaction",
    CommandType.RESERVE_NOW: "ReserveNow",
    CommandType.CANCEL_RESERVATION: "CancelReservation",
    CommandType.UNLOCK_CONNECTOR: "UnlockConnector",
}


class CommandFailure(StrEnum):
    """How an OCPP command ended without a usable answer (csms.errors.CommandError)."""

    TIMEOUT = "timeout"
    NOT_SUPPORTED = "not_supported"
    FAILED = "failed"


def command_result(
    command: CommandType, *, answer_status: str | None, failure: CommandFailure | None
) -> CommandResultType:
    """The CommandResult for what the charger answered to the OCPP command."""
    if failure is CommandFailure.TIMEOUT:
        return CommandResultType.TIMEOUT
    if failure is CommandFailure.NOT_SUPPORTED:
        return CommandResultType.NOT_SUPPORTED
    if failure is not None or answer_status is None:
        return CommandResultType.FAILED
    return _RESULTS[command].get(answer_status, CommandResultType.FAILED)


def failure_of_call_error(error_code: str) -> CommandFailure:
    """A CALLERROR's code as a command failure (OCPP-J §4.2.3)."""
    if error_code in ("NotSupported", "NotImplemented"):
        return CommandFailure.NOT_SUPPORTED
    return CommandFailure.FAILED


# --- Sessions and CDRs for the token's eMSP (mod_sessions, mod_cdrs) ------------------------


def cdr_token(token: TokenState) -> dict[str, Any]:
    """mod_cdrs §CdrToken of a partner's token: its owner, uid, type and contract."""
    return {
        "country_code": token.country_code,
        "party_id": token.party_id,
        "uid": token.uid,
        "type": token.type.value,
        "contract_id": token.contract_id,
    }


def for_token_owner(
    obj: Mapping[str, Any],
    *,
    token: TokenState,
    method: AuthMethod,
    authorization_reference: str | None,
) -> dict[str, Any]:
    """A Session or CDR (JSON) as the token's eMSP gets it: its CdrToken, how it was
    authorized, and the reference the eMSP gave (mod_tokens §AuthorizationInfo Object:
    "this reference will be provided in the relevant Session and/or CDR")."""
    out = {**obj, "cdr_token": cdr_token(token), "auth_method": method.value}
    if authorization_reference is not None:
        out["authorization_reference"] = authorization_reference
    else:
        out.pop("authorization_reference", None)
    return out


# mod_sessions §PATCH Method: charging_periods in a PATCH are *added* to the ones the eMSP
# holds, and ours are recomputed whole each time, so a PATCH leaves them out; the final
# PUT at the end of the session replaces them with the complete list.
_SESSION_PATCH_FIELDS = ("end_date_time", "kwh", "total_cost", "status", "last_updated")


def session_patch(session: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body for a Session change: what moves during a session."""
    return {key: session[key] for key in _SESSION_PATCH_FIELDS if key in session}


def _negated(price: Mapping[str, Any]) -> dict[str, Any]:
    return {key: -value for key, value in price.items()}


def credit_cdr(cdr: Mapping[str, Any], *, credit_id: str, last_updated: str) -> dict[str, Any]:
    """The Credit CDR that cancels a CDR already sent (mod_cdrs §Credit CDRs).

    "The Credit CDR will contain all the data of the original CDR. Only the values in the
    total_cost field SHALL contain the negative amounts of the original CDR"; `credit` is
    true and `credit_reference_id` the original's id.
    """
    return {
        **cdr,
        "id": credit_id,
        "total_cost": _negated(cdr["total_cost"]),
        "credit": True,
        "credit_reference_id": cdr["id"],
        "last_updated": last_updated,
    }


# --- push delivery --------------------------------------------------------------------------


class PushKind(StrEnum):
    """What one queued push does at the partner."""

    # Bring the partner's copy of a location in line: PUT it, or withdraw it (all EVSEs
    # REMOVED) when the partner is no longer to hold it; built when sent, so always latest.
    LOCATION_PUT = "location_put"
    EVSE_PATCH = "evse_patch"
    SESSION_PUT = "session_put"
    SESSION_PATCH = "session_patch"
    CDR_POST = "cdr_post"
    COMMAND_RESULT = "command_result"
    # Bring the partner's copy of a tariff in line: PUT the current Tariff, or DELETE it
    # when csms no longer has it (mod_tariffs §Receiver Interface); built when sent.
    TARIFF_PUT = "tariff_put"


def collapsed_kind(pending: PushKind | None, new: PushKind) -> PushKind:
    """The kind a push keeps when it replaces a pending one for the same object.

    Only the latest state of an object matters where OCPI allows it (a Location, an EVSE
    status, a Session), so a newer push replaces an unsent one. A Session the partner has
    not received yet stays a PUT: a PATCH on an object it does not hold fails
    (transport_and_format §PATCH).
    """
    if pending is PushKind.SESSION_PUT and new is PushKind.SESSION_PATCH:
        return PushKind.SESSION_PUT
    return new


COLLAPSIBLE = frozenset(
    {
        PushKind.LOCATION_PUT,
        PushKind.EVSE_PATCH,
        PushKind.SESSION_PUT,
        PushKind.SESSION_PATCH,
        PushKind.TARIFF_PUT,
    }
)
"""Kinds whose pending push a newer one for the same object replaces. A CDR is final
(mod_cdrs §Flow and Lifecycle: "it cannot be changed or replaced once sent") and a
CommandResult answers one command: those are never collapsed."""


def retry_delay(attempts: int, *, ceiling: float) -> float:
    """Seconds before the next try after `attempts` failures: 1, 2, 4, ... up to `ceiling`."""
    return float(min(ceiling, 2.0 ** max(attempts - 1, 0)))


def falls_back_to_put(kind: PushKind, *, http_status: int, ocpi_status: int | None) -> bool:
    """Whether a refused PATCH is sent again as a PUT of the whole object.

    transport_and_format §PATCH: "In case a PATCH request fails, the client is expected to
    call the GET method ... If the object doesn't exist, the client should do a PUT";
    csms skips the GET and PUTs the latest state, which is always right.
    """
    if kind not in (PushKind.EVSE_PATCH, PushKind.SESSION_PATCH):
        return False
    return http_status == 404 or (ocpi_status is not None and 2000 <= ocpi_status <= 2999)


def endpoint_url(
    endpoints: Iterable[Mapping[str, str]], module: ModuleID, role: InterfaceRole
) -> str | None:
    """The URL of a partner's endpoint for a module and interface role, if it has one."""
    for endpoint in endpoints:
        if endpoint.get("identifier") == module.value and endpoint.get("role") == role.value:
            return endpoint.get("url")
    return None


@dataclass(frozen=True)
class PartnerReply:
    """A partner's answer to an OCPI call with its envelope opened (transport_and_format
    §Response format); only answers with a 1xxx status come back as a reply."""

    http_status: int
    status_code: int
    data: Any = None
    status_message: str | None = None
    # The Location header: where a POSTed CDR lives at the eMSP (mod_cdrs §POST Method).
    location: str | None = None


def pick_version(versions: Any) -> str | None:
    """The URL of OCPI 2.2.1 in a partner's version list (version_information_endpoint
    §Version class), or None. Other versions and malformed entries are ignored."""
    if not isinstance(versions, list):
        return None
    for entry in versions:
        if isinstance(entry, dict) and entry.get("version") == VERSION:
            url = entry.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def usable_endpoints(details: Any) -> list[dict[str, str]]:
    """The endpoints of a partner's 2.2.1 version details, as {identifier, role, url}.

    Custom modules (version_information_endpoint §Custom Modules) and malformed entries
    are dropped: csms only calls the modules it knows.
    """
    if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
        return []
    modules = {module.value for module in ModuleID}
    roles = {role.value for role in InterfaceRole}
    found = []
    for endpoint in details["endpoints"]:
        if not isinstance(endpoint, dict):
            continue
        identifier, role, url = (
            endpoint.get("identifier"),
            endpoint.get("role"),
            endpoint.get("url"),
        )
        if identifier in modules and isinstance(url, str) and url:
            # credentials: "the role is not relevant as this module is the same for all roles"
            if role in roles or identifier == ModuleID.CREDENTIALS.value:
                found.append({"identifier": identifier, "role": role or "", "url": url})
    return found


def credentials_url(endpoints: Iterable[Mapping[str, str]]) -> str | None:
    """A partner's credentials endpoint, whatever role it was listed with."""
    for endpoint in endpoints:
        if endpoint.get("identifier") == ModuleID.CREDENTIALS.value:
            return endpoint.get("url")
    return None
