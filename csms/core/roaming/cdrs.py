"""Sessions and CDRs as the token owner's eMSP sees them (mod_sessions, mod_cdrs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csms.core.roaming.tokens import TokenState
from csms.core.session import AuthMethod


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
