"""OCPI 2.2.1 message routing: who a request comes from, and where an answer or push goes.

A partner registered with the role HUB relays for other parties (transport_and_format
§Message Routing). A request from a hub names its originating party in the
``OCPI-from-*`` headers; a party reached through a hub is addressed with ``OCPI-to-*``.
The rules here keep each party to its own data: a token belongs to the party in its
URL, a Session or CDR goes to the hub addressed to the token's owner, and a party asking
through a hub sees only its own. Pure: no I/O (docs/ocpi.md, "Hubs").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from csms.core.roaming import Role


class ConnectionStatus(StrEnum):
    """mod_hub_client_info §ConnectionStatus enum."""

    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


@dataclass(frozen=True, order=True)
class PartyRef:
    """An OCPI party: country code and party id, compared case-insensitively (both are
    CiStrings, types §CiString)."""

    country_code: str
    party_id: str

    @classmethod
    def of(cls, country_code: str, party_id: str) -> PartyRef:
        return cls(country_code=country_code.upper(), party_id=party_id.upper())

    def headers(self, direction: str) -> dict[str, str]:
        """The routing headers naming this party: `direction` is "to" or "from"."""
        return {
            f"OCPI-{direction}-country-code": self.country_code,
            f"OCPI-{direction}-party-id": self.party_id,
        }


def is_hub(roles: Iterable[str], their_roles: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a partner is a hub: the operator said so, or it registered as one
    (credentials §Credentials object: "A Hub SHALL only report itself as role: Hub")."""
    return Role.HUB.value in roles or any(r.get("role") == Role.HUB.value for r in their_roles)


def own_parties(
    country_code: str, party_id: str, their_roles: Iterable[Mapping[str, Any]]
) -> frozenset[PartyRef]:
    """The parties a partner is itself: the one it was set up as, and every role it
    registered (a platform may host several, transport_and_format §Platforms)."""
    found = {PartyRef.of(country_code, party_id)}
    for role in their_roles:
        if isinstance(role.get("country_code"), str) and isinstance(role.get("party_id"), str):
            found.add(PartyRef.of(role["country_code"], role["party_id"]))
    return frozenset(found)


class Refusal(StrEnum):
    """Why a requesting party is not accepted (answered 2001 or 404 by the listener)."""

    NOT_YOURS = "not_yours"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class Requester:
    """Who an OCPI request is from: the partner (the connection) and the party on whose
    behalf it asks. `via_hub` is True when a hub relays for one of its clients; a hub
    asking for itself (no or its own OCPI-from) has `party` None: it acts for all the
    parties it relays for."""

    party: PartyRef | None
    via_hub: bool

    def may_see(self, owner: PartyRef | None) -> bool:
        """Whether an object owned by `owner` (a token's party) may be shown or changed."""
        return self.party is None or owner is None or owner == self.party


def requester(
    *,
    hub: bool,
    own: frozenset[PartyRef],
    from_party: PartyRef | None,
    client_status: ConnectionStatus | None,
) -> Requester | Refusal:
    """Who a request is from (transport_and_format §Message Routing Headers).

    A direct partner may only speak for its own parties: another party in OCPI-from is
    refused (no one speaks for a party that did not register); a platform with several
    parties that names one sees only that one's data. A hub speaks for itself (no
    OCPI-from, or its own: it sees all it relays) or for one of its clients (that client's
    data only); a client the hub itself reported SUSPENDED ("will never connect anymore",
    mod_hub_client_info §ConnectionStatus enum) is refused. A client it never reported is
    accepted: ClientInfo pushes are optional for a hub.
    """
    if from_party is None or from_party in own:
        several = from_party is not None and not hub and len(own) > 1
        return Requester(party=from_party if several else None, via_hub=False)
    if not hub:
        return Refusal.NOT_YOURS
    if client_status is ConnectionStatus.SUSPENDED:
        return Refusal.SUSPENDED
    return Requester(party=from_party, via_hub=True)


def token_owner_allowed(
    requester_: Requester, *, hub: bool, own: frozenset[PartyRef], owner: PartyRef
) -> bool:
    """Whether the requester may push or read a token of `owner` (the URL's party).

    mod_tokens §Receiver Interface: country_code and party_id in the URL are "of the eMSP
    that 'owns' this Token". A direct partner owns only its own parties' tokens; through a
    hub the token belongs to the originating party (transport_and_format §Broadcast Push:
    "the party-id and country-code in the URL segments will still be the original party-id
    and country-code"), which must be the party the hub speaks for when it names one.
    """
    if not hub:
        return owner in own and requester_.may_see(owner)
    return requester_.may_see(owner)


def push_recipient(*, partner: PartyRef, owner: PartyRef | None) -> PartyRef:
    """The party a push about a token's Session or CDR is addressed to (OCPI-to-*).

    transport_and_format §Party to Party via Hub: a direct request carries "TO
    Receiving-party"; through a hub that is the token's owner, not the hub. A platform
    partner with several parties gets it addressed to the token's party too.
    """
    return partner if owner is None else owner


def response_routing(
    *, us: PartyRef, caller: PartyRef, from_party: PartyRef | None
) -> dict[str, str]:
    """A functional module's answer: "Direct response: TO Requesting-party, FROM
    Receiving-party" (transport_and_format §Party to Party via Hub)."""
    return {**(from_party or caller).headers("to"), **us.headers("from")}


DIRECT = Requester(party=None, via_hub=False)
"""A request that names no other party: the partner for all its own parties."""
