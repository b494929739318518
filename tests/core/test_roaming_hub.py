"""Message routing rules (core.roaming_hub): who a request speaks for, whose tokens it may
touch, and where a push about a token goes."""

from __future__ import annotations

import pytest

from csms.core.roaming_hub import (
    DIRECT,
    ConnectionStatus,
    PartyRef,
    Refusal,
    Requester,
    is_hub,
    own_parties,
    push_recipient,
    requester,
    response_routing,
    token_owner_allowed,
)

HUB = PartyRef.of("NL", "HUB")
EMSP = PartyRef.of("NL", "EMS")
A = PartyRef.of("de", "aaa")
B = PartyRef.of("FR", "BBB")


def test_parties_compare_without_case() -> None:
    """CiStrings: de/aaa is DE/AAA."""
    assert A == PartyRef(country_code="DE", party_id="AAA")


def test_a_hub_is_one_by_the_operator_or_by_its_credentials() -> None:
    """HUB in the operator's roles, or a CredentialsRole with role HUB."""
    assert is_hub(["HUB"], [])
    assert is_hub(["EMSP"], [{"role": "HUB", "country_code": "NL", "party_id": "HUB"}])
    assert not is_hub(["EMSP"], [{"role": "EMSP", "country_code": "NL", "party_id": "EMS"}])


def test_own_parties_include_every_registered_role() -> None:
    """The party a partner was created as and every role it registered."""
    roles = [{"role": "EMSP", "country_code": "BE", "party_id": "EMX"}, {"role": "CPO"}]
    assert own_parties("NL", "EMS", roles) == {EMSP, PartyRef.of("BE", "EMX")}


@pytest.mark.parametrize(
    ("hub", "own", "from_party", "status", "expected"),
    [
        # A direct partner: no header or its own party -> all its data.
        (False, {EMSP}, None, None, DIRECT),
        (False, {EMSP}, EMSP, None, DIRECT),
        # A platform with two parties naming one: that one's data only.
        (False, {EMSP, A}, A, None, Requester(party=A, via_hub=False)),
        # A direct partner naming a stranger: refused.
        (False, {EMSP}, B, None, Refusal.NOT_YOURS),
        # A hub for itself, or for a client (reported or not).
        (True, {HUB}, None, None, DIRECT),
        (True, {HUB}, HUB, None, DIRECT),
        (True, {HUB}, A, None, Requester(party=A, via_hub=True)),
        (True, {HUB}, A, ConnectionStatus.OFFLINE, Requester(party=A, via_hub=True)),
        (True, {HUB}, B, ConnectionStatus.SUSPENDED, Refusal.SUSPENDED),
    ],
)
def test_who_a_request_speaks_for(
    hub: bool,
    own: set[PartyRef],
    from_party: PartyRef | None,
    status: ConnectionStatus | None,
    expected: Requester | Refusal,
) -> None:
    """transport_and_format §Message Routing Headers, as csms applies them."""
    found = requester(hub=hub, own=frozenset(own), from_party=from_party, client_status=status)
    assert found == expected


@pytest.mark.parametrize(
    ("hub", "who", "owner", "allowed"),
    [
        (False, DIRECT, EMSP, True),
        (False, DIRECT, A, False),
        (True, DIRECT, A, True),
        (True, Requester(party=A, via_hub=True), A, True),
        (True, Requester(party=A, via_hub=True), B, False),
    ],
)
def test_whose_tokens_a_requester_may_touch(
    hub: bool, who: Requester, owner: PartyRef, allowed: bool
) -> None:
    """A direct partner its own parties' tokens; through a hub, the party it speaks for
    (or, the hub itself, any it relays)."""
    own = frozenset({HUB if hub else EMSP})
    assert token_owner_allowed(who, hub=hub, own=own, owner=owner) is allowed


def test_pushes_and_answers_are_addressed_to_the_party_concerned() -> None:
    """A push for a token's owner goes TO that owner; an answer TO the requesting party,
    FROM us."""
    assert push_recipient(partner=HUB, owner=A) == A
    assert push_recipient(partner=EMSP, owner=None) == EMSP
    us = PartyRef.of("XX", "CSM")
    assert response_routing(us=us, caller=HUB, from_party=A) == {
        "OCPI-to-country-code": "DE",
        "OCPI-to-party-id": "AAA",
        "OCPI-from-country-code": "XX",
        "OCPI-from-party-id": "CSM",
    }
    assert response_routing(us=us, caller=HUB, from_party=None)["OCPI-to-party-id"] == "HUB"
