"""Scopes, roles and the checks on operator names and passwords (pure)."""

from __future__ import annotations

import pytest

from csms.core.access import (
    Role,
    Scope,
    grants,
    implied_scopes,
    new_api_key,
    password_problem,
    role_scopes,
    same_token,
    token_digest,
    username_problem,
)


@pytest.mark.parametrize(
    ("role", "read", "commands", "admin"),
    [
        (Role.VIEWER, True, False, False),
        (Role.OPERATOR, True, True, False),
        (Role.ADMIN, True, True, True),
    ],
)
def test_roles_hold_their_scope_and_those_below(
    role: Role, read: bool, commands: bool, admin: bool
) -> None:
    """viewer reads; operator also sends commands; admin also administers."""
    held = role_scopes(role)
    assert [grants(held, scope) for scope in Scope] == [read, commands, admin]


def test_a_key_with_several_scopes_holds_the_highest_and_below() -> None:
    """Scopes listed on a key add up to the highest one with everything under it."""
    assert implied_scopes([Scope.READ, Scope.COMMANDS]) == {Scope.READ, Scope.COMMANDS}
    assert implied_scopes([Scope.ADMIN]) == set(Scope)
    assert implied_scopes([]) == set()


@pytest.mark.parametrize(
    ("username", "ok"),
    [("ada", True), ("ops.team@example", True), ("", False), (".hidden", False), ("a b", False)],
)
def test_usernames(username: str, ok: bool) -> None:
    """Letters, digits and . _ @ -, starting with a letter or digit, up to 64."""
    assert (username_problem(username) is None) is ok


@pytest.mark.parametrize(
    ("password", "problem"),
    [("a" * 9, "at least 10"), ("a" * 10, None), ("a" * 129, "at most 128")],
)
def test_password_length(password: str, problem: str | None) -> None:
    """Operator passwords have 10 to 128 characters."""
    found = password_problem(password)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_api_keys_and_their_digests() -> None:
    """A key is csk_ and 43 characters; its digest is a hex SHA-256, never the key."""
    key = new_api_key(bytes(range(32)))
    assert key.startswith("csk_")
    assert len(key) == 4 + 43
    assert len(token_digest(key)) == 64
    assert key not in token_digest(key)
    assert same_token(key, key)
    assert not same_token(key, key[:-1] + "x")
