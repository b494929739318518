"""A partner's token at our chargers: its OCPP idTag and the authorization decisions
(mod_tokens)."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from csms.core.authorize import AuthorizationStatus, IdTagInfo
from csms.core.roaming.protocol import AllowedType, WhitelistType
from csms.core.session import AuthMethod, TokenType

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
