"""OCPI 2.2.1 roaming as a CPO: the enums of the exchange and the pure decisions.

Who may call, what a partner is shown, how a partner's token authorizes a charger, and
how an OCPP answer becomes an OCPI command result. No I/O, no clock, no randomness:
times, tokens and stored state come in as arguments (docs/ocpi.md).

Spec: ``ocpi/ocpi`` tag ``2.2.1`` (transport_and_format, credentials,
version_information_endpoint, status_codes, types, mod_locations, mod_sessions, mod_cdrs,
mod_tokens, mod_commands).
"""

from __future__ import annotations

from csms.core.roaming.cdrs import (
    cdr_token,
    credit_cdr,
    for_token_owner,
    session_patch,
)
from csms.core.roaming.commands import (
    COMMAND_WINDOW_SECONDS,
    OCPP_ACTIONS,
    CommandFailure,
    command_result,
    failure_of_call_error,
)
from csms.core.roaming.credentials import (
    PresentedToken,
    authorization_header,
    digests_match,
    is_credentials_token,
    presented_tokens,
    token_digest,
)
from csms.core.roaming.handshake import (
    PartnerReply,
    credentials_url,
    endpoint_url,
    pick_version,
    usable_endpoints,
)
from csms.core.roaming.locations import (
    LocationChoice,
    Selection,
    evse_uids,
    is_published,
    is_selected,
    latest_update,
    location_for_partner,
    withdrawn_location,
)
from csms.core.roaming.protocol import (
    OUR_ENDPOINTS,
    VERSION,
    AllowedType,
    ChargingPreferencesResponse,
    CommandResponseType,
    CommandResultType,
    CommandType,
    InterfaceRole,
    ModuleID,
    OcpiStatus,
    PartnerState,
    ProfileType,
    Role,
    VersionNumber,
    WhitelistType,
    is_success,
)
from csms.core.roaming.push import (
    COLLAPSIBLE,
    PushKind,
    collapsed_kind,
    falls_back_to_put,
    retry_delay,
)
from csms.core.roaming.tokens import (
    Authorization,
    TokenState,
    asks_emsp,
    command_decision,
    earlier_decision,
    ended_partner_decision,
    id_tag_for,
    real_time_decision,
    unreachable_decision,
    whitelist_decision,
)

__all__ = [
    "COLLAPSIBLE",
    "COMMAND_WINDOW_SECONDS",
    "OCPP_ACTIONS",
    "OUR_ENDPOINTS",
    "VERSION",
    "AllowedType",
    "Authorization",
    "ChargingPreferencesResponse",
    "CommandFailure",
    "CommandResponseType",
    "CommandResultType",
    "CommandType",
    "InterfaceRole",
    "LocationChoice",
    "ModuleID",
    "OcpiStatus",
    "PartnerReply",
    "PartnerState",
    "PresentedToken",
    "ProfileType",
    "PushKind",
    "Role",
    "Selection",
    "TokenState",
    "VersionNumber",
    "WhitelistType",
    "asks_emsp",
    "authorization_header",
    "cdr_token",
    "collapsed_kind",
    "command_decision",
    "command_result",
    "credentials_url",
    "credit_cdr",
    "digests_match",
    "earlier_decision",
    "ended_partner_decision",
    "endpoint_url",
    "evse_uids",
    "failure_of_call_error",
    "falls_back_to_put",
    "for_token_owner",
    "id_tag_for",
    "is_credentials_token",
    "is_published",
    "is_selected",
    "is_success",
    "latest_update",
    "location_for_partner",
    "pick_version",
    "presented_tokens",
    "real_time_decision",
    "retry_delay",
    "session_patch",
    "token_digest",
    "unreachable_decision",
    "usable_endpoints",
    "whitelist_decision",
    "withdrawn_location",
]
