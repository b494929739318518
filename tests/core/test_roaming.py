"""The roaming decisions: tokens in headers, what a partner holds, how a partner's token is
authorized, command results, and how pushes collapse."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.core.authorize import AuthorizationStatus
from csms.core.roaming import (
    AllowedType,
    CommandFailure,
    CommandResultType,
    CommandType,
    LocationChoice,
    PresentedToken,
    PushKind,
    Selection,
    TokenState,
    WhitelistType,
    asks_emsp,
    authorization_header,
    collapsed_kind,
    command_result,
    credit_cdr,
    evse_uids,
    failure_of_call_error,
    falls_back_to_put,
    for_token_owner,
    id_tag_for,
    is_selected,
    latest_update,
    location_for_partner,
    pick_version,
    presented_tokens,
    real_time_decision,
    retry_delay,
    session_patch,
    unreachable_decision,
    usable_endpoints,
    whitelist_decision,
    withdrawn_location,
)
from csms.core.session import AuthMethod, TokenType

NOW = "2026-01-01T12:00:00.000Z"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            f"Token {_b64('abc-123')}",
            [PresentedToken("abc-123", True), PresentedToken(_b64("abc-123"), False)],
        ),
        (
            "Token ebf3b399-779f-4497-9b9d-ac6ad3cc44d2",
            [PresentedToken("ebf3b399-779f-4497-9b9d-ac6ad3cc44d2", False)],
        ),
        ("token " + _b64("x"), [PresentedToken("x", True), PresentedToken(_b64("x"), False)]),
        ("Bearer abc", []),
        ("Token ", []),
        (None, []),
        ("Token a b", []),
        ("Token " + _b64("tab\there"), [PresentedToken(_b64("tab\there"), False)]),
    ],
)
def test_authorization_header_readings(header: str | None, expected: list[PresentedToken]) -> None:
    """Base64 first (2.2.1), the unencoded reading second; other schemes, blanks and control
    characters give nothing usable."""
    assert presented_tokens(header) == expected


def test_we_send_base64_unless_told_otherwise() -> None:
    """transport_and_format §Authorization header: Token <base64>; unencoded on request."""
    assert authorization_header("abc") == f"Token {_b64('abc')}"
    assert authorization_header("abc", unencoded=True) == "Token abc"


def _location(*uids: str, publish: bool = True, **more: Any) -> dict[str, Any]:
    evses = [
        {"uid": uid, "status": "AVAILABLE", "last_updated": NOW, "connectors": []} for uid in uids
    ]
    return {"id": "LOC-1", "publish": publish, "last_updated": NOW, "evses": evses, **more}


@pytest.mark.parametrize(
    ("selection", "location", "expected"),
    [
        (Selection(True, {}), _location(), True),
        (Selection(True, {}), _location(publish=False), False),
        (
            Selection(True, {}),
            _location(publish=False, publish_allowed_to=[{"uid": "T", "type": "RFID"}]),
            True,
        ),
        (Selection(False, {}), _location(), False),
        (Selection(False, {"LOC-1": LocationChoice("LOC-1")}), _location(publish=False), True),
    ],
)
def test_which_locations_a_partner_holds(
    selection: Selection, location: dict[str, Any], expected: bool
) -> None:
    """`all`: published locations (publish, or limited to publish_allowed_to); a private
    one only when chosen explicitly."""
    assert is_selected(selection, location) is expected


def test_only_chosen_chargers_and_removed_evses() -> None:
    """A choice of chargers keeps their EVSEs; an EVSE the partner held before and no longer
    gets is sent REMOVED, and stays REMOVED in later PUTs."""
    location = _location("CP-A*1", "CP-A*2", "CP-B*1")
    owners = {"CP-A*1": "CP-A", "CP-A*2": "CP-A", "CP-B*1": "CP-B"}
    choice = LocationChoice("LOC-1", ("CP-A",))
    first = location_for_partner(
        location, choice=choice, charger_by_evse=owners, sent=None, now=NOW
    )
    assert evse_uids(first) == {"CP-A*1", "CP-A*2"}
    fewer = location_for_partner(
        _location("CP-A*1"), choice=None, charger_by_evse=owners, sent=first, now="LATER"
    )
    statuses = {evse["uid"]: evse["status"] for evse in fewer["evses"]}
    assert statuses == {"CP-A*1": "AVAILABLE", "CP-A*2": "REMOVED"}
    assert fewer["last_updated"] == "LATER"
    again = location_for_partner(
        _location("CP-A*1"), choice=None, charger_by_evse=owners, sent=fewer, now=NOW
    )
    assert {evse["uid"]: evse["status"] for evse in again["evses"]} == statuses
    gone = withdrawn_location(location, sent=first, now=NOW)
    assert {evse["status"] for evse in gone["evses"]} == {"REMOVED"}
    assert evse_uids(gone) == frozenset()


def test_location_last_updated_follows_its_evses() -> None:
    """mod_locations §GET List: the Location's last_updated is the newest of its parts."""
    location = _location("CP*1")
    location["evses"][0]["last_updated"] = "2026-01-02T00:00:00.5Z"
    assert latest_update(location) == datetime(2026, 1, 2, 0, 0, 0, 500000, tzinfo=UTC)


def _token(
    whitelist: WhitelistType, *, valid: bool = True, group_id: str | None = None
) -> TokenState:
    return TokenState(
        "NL", "EMS", "0123ABCD", TokenType.RFID, "NL-EMS-C1", valid, whitelist, group_id
    )


@pytest.mark.parametrize(
    ("whitelist", "asks", "offline"),
    [
        (WhitelistType.ALWAYS, False, AuthorizationStatus.ACCEPTED),
        (WhitelistType.ALLOWED, True, AuthorizationStatus.ACCEPTED),
        (WhitelistType.ALLOWED_OFFLINE, True, AuthorizationStatus.ACCEPTED),
        (WhitelistType.NEVER, True, AuthorizationStatus.INVALID),
    ],
)
def test_whitelist_types(
    whitelist: WhitelistType, asks: bool, offline: AuthorizationStatus
) -> None:
    """mod_tokens §WhitelistType: who is asked in real time, and what an unreachable eMSP
    means: the copy for ALLOWED/ALLOWED_OFFLINE, a refusal for NEVER."""
    assert asks_emsp(whitelist) is asks
    assert unreachable_decision(_token(whitelist)).info.status is offline
    assert (
        unreachable_decision(_token(whitelist, valid=False)).info.status
        is AuthorizationStatus.INVALID
    )


@pytest.mark.parametrize(
    ("allowed", "status"),
    [
        (AllowedType.ALLOWED, AuthorizationStatus.ACCEPTED),
        (AllowedType.BLOCKED, AuthorizationStatus.BLOCKED),
        (AllowedType.EXPIRED, AuthorizationStatus.EXPIRED),
        (AllowedType.NO_CREDIT, AuthorizationStatus.BLOCKED),
        (AllowedType.NOT_ALLOWED, AuthorizationStatus.INVALID),
        (None, AuthorizationStatus.INVALID),
    ],
)
def test_real_time_answers(allowed: AllowedType | None, status: AuthorizationStatus) -> None:
    """mod_tokens §AllowedType as OCPP statuses; an unknown token is Invalid; the eMSP's
    reference is kept for the Session and CDR."""
    decision = real_time_decision(
        _token(WhitelistType.NEVER), allowed=allowed, authorization_reference="R1"
    )
    assert decision.info.status is status
    assert (decision.method, decision.authorization_reference) == (AuthMethod.AUTH_REQUEST, "R1")


def test_group_id_is_the_parent_id_tag_when_it_fits() -> None:
    """mod_tokens §Token Object: group_id is OCPP's parentId, at most 20 characters there."""
    assert (
        whitelist_decision(_token(WhitelistType.ALWAYS, group_id="GROUP-1")).info.parent_id_tag
        == "GROUP-1"
    )
    assert (
        whitelist_decision(_token(WhitelistType.ALWAYS, group_id="G" * 21)).info.parent_id_tag
        is None
    )


def test_id_tags_for_long_uids_are_derived_and_stable() -> None:
    """An RFID uid is the idTag; a 36-character APP_USER uid gets a stable 20-character one."""
    assert (
        id_tag_for(country_code="NL", party_id="EMS", uid="0123ABCD", token_type="RFID")
        == "0123ABCD"
    )
    uid = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"
    first = id_tag_for(country_code="NL", party_id="EMS", uid=uid, token_type="APP_USER")
    assert len(first) == 20
    assert first == id_tag_for(country_code="NL", party_id="EMS", uid=uid, token_type="APP_USER")
    assert first != id_tag_for(country_code="DE", party_id="EMS", uid=uid, token_type="APP_USER")


@pytest.mark.parametrize(
    ("command", "status", "failure", "result"),
    [
        (CommandType.START_SESSION, "Accepted", None, CommandResultType.ACCEPTED),
        (CommandType.START_SESSION, "Rejected", None, CommandResultType.REJECTED),
        (CommandType.STOP_SESSION, "Accepted", None, CommandResultType.ACCEPTED),
        (CommandType.RESERVE_NOW, "Occupied", None, CommandResultType.EVSE_OCCUPIED),
        (CommandType.RESERVE_NOW, "Faulted", None, CommandResultType.EVSE_INOPERATIVE),
        (CommandType.RESERVE_NOW, "Unavailable", None, CommandResultType.EVSE_INOPERATIVE),
        (CommandType.CANCEL_RESERVATION, "Rejected", None, CommandResultType.UNKNOWN_RESERVATION),
        (CommandType.UNLOCK_CONNECTOR, "Unlocked", None, CommandResultType.ACCEPTED),
        (CommandType.UNLOCK_CONNECTOR, "UnlockFailed", None, CommandResultType.FAILED),
        (CommandType.UNLOCK_CONNECTOR, "NotSupported", None, CommandResultType.NOT_SUPPORTED),
        (CommandType.START_SESSION, None, CommandFailure.TIMEOUT, CommandResultType.TIMEOUT),
        (
            CommandType.START_SESSION,
            None,
            CommandFailure.NOT_SUPPORTED,
            CommandResultType.NOT_SUPPORTED,
        ),
        (CommandType.STOP_SESSION, None, CommandFailure.FAILED, CommandResultType.FAILED),
        (CommandType.STOP_SESSION, "Bogus", None, CommandResultType.FAILED),
    ],
)
def test_command_results(
    command: CommandType,
    status: str | None,
    failure: CommandFailure | None,
    result: CommandResultType,
) -> None:
    """Each OCPP answer, timeout or CALLERROR as the OCPI CommandResult."""
    assert command_result(command, answer_status=status, failure=failure) is result


def test_call_errors_that_mean_not_supported() -> None:
    """NotSupported and NotImplemented CALLERRORs are NOT_SUPPORTED, others FAILED."""
    assert failure_of_call_error("NotImplemented") is CommandFailure.NOT_SUPPORTED
    assert failure_of_call_error("InternalError") is CommandFailure.FAILED


@pytest.mark.parametrize(
    ("pending", "new", "kept"),
    [
        (None, PushKind.SESSION_PATCH, PushKind.SESSION_PATCH),
        (PushKind.SESSION_PUT, PushKind.SESSION_PATCH, PushKind.SESSION_PUT),
        (PushKind.SESSION_PATCH, PushKind.SESSION_PUT, PushKind.SESSION_PUT),
        (PushKind.EVSE_PATCH, PushKind.EVSE_PATCH, PushKind.EVSE_PATCH),
        (PushKind.LOCATION_PUT, PushKind.LOCATION_PUT, PushKind.LOCATION_PUT),
    ],
)
def test_collapsing_keeps_a_put_the_partner_has_not_had(
    pending: PushKind | None, new: PushKind, kept: PushKind
) -> None:
    """A newer push replaces an unsent one; a Session not yet PUT stays a PUT."""
    assert collapsed_kind(pending, new) is kept


def test_failed_patches_become_puts() -> None:
    """transport_and_format §PATCH: a PATCH the partner cannot apply is sent as a PUT."""
    assert falls_back_to_put(PushKind.EVSE_PATCH, http_status=404, ocpi_status=None)
    assert falls_back_to_put(PushKind.SESSION_PATCH, http_status=200, ocpi_status=2001)
    assert not falls_back_to_put(PushKind.SESSION_PATCH, http_status=200, ocpi_status=3000)
    assert not falls_back_to_put(PushKind.CDR_POST, http_status=404, ocpi_status=None)


def test_retry_delays_grow_to_the_ceiling() -> None:
    """1, 2, 4, ... seconds, never above the ceiling."""
    assert [retry_delay(n, ceiling=10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_session_patches_leave_charging_periods_out() -> None:
    """mod_sessions §PATCH adds charging_periods; ours are whole, so only the final PUT
    carries them."""
    session = {
        "id": "1",
        "kwh": 1.5,
        "status": "ACTIVE",
        "charging_periods": [{}],
        "last_updated": NOW,
    }
    assert session_patch(session) == {"kwh": 1.5, "status": "ACTIVE", "last_updated": NOW}


def test_sessions_and_cdrs_carry_the_token_owner() -> None:
    """The eMSP's CdrToken and how the driver was authorized replace the CPO's defaults."""
    session = {"id": "1", "cdr_token": {"country_code": "XX"}, "auth_method": "WHITELIST"}
    out = for_token_owner(
        session,
        token=_token(WhitelistType.NEVER),
        method=AuthMethod.COMMAND,
        authorization_reference="R9",
    )
    assert out["cdr_token"] == {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": "0123ABCD",
        "type": "RFID",
        "contract_id": "NL-EMS-C1",
    }
    assert (out["auth_method"], out["authorization_reference"]) == ("COMMAND", "R9")


def test_credit_cdrs_negate_the_cost() -> None:
    """mod_cdrs §Credit CDRs: all the data, a new id, total_cost negated, credit_reference_id."""
    cdr = {"id": "12", "total_cost": {"excl_vat": 1.2, "incl_vat": 1.45}, "total_energy": 3.0}
    credit = credit_cdr(cdr, credit_id="12-C", last_updated=NOW)
    assert credit["total_cost"] == {"excl_vat": -1.2, "incl_vat": -1.45}
    assert (credit["id"], credit["credit"], credit["credit_reference_id"]) == ("12-C", True, "12")
    assert credit["total_energy"] == 3.0


def test_partner_versions_and_endpoints_are_read_leniently() -> None:
    """Only 2.2.1 is picked; unknown modules, roles and malformed entries are dropped."""
    versions = [{"version": "2.1.1", "url": "a"}, "junk", {"version": "2.2.1", "url": "b"}]
    assert pick_version(versions) == "b"
    assert pick_version({"version": "2.2.1"}) is None
    details = {
        "endpoints": [
            {"identifier": "locations", "role": "RECEIVER", "url": "l"},
            {"identifier": "nltnm-tokens", "role": "SENDER", "url": "x"},
            {"identifier": "credentials", "url": "c"},
            {"identifier": "cdrs", "role": "BOTH", "url": "y"},
        ]
    }
    assert usable_endpoints(details) == [
        {"identifier": "locations", "role": "RECEIVER", "url": "l"},
        {"identifier": "credentials", "role": "", "url": "c"},
    ]
