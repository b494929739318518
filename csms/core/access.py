"""Who may do what: scopes, roles, operator passwords, API keys, session and CSRF tokens.

Pure: the random bytes and the time are passed in. A scope grants itself and the scopes
below it (`admin` > `commands` > `read`); a role is a name for the highest scope it holds
(docs/operations.md, "Accounts, roles and API keys").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from enum import StrEnum


class Scope(StrEnum):
    """What a credential may do; each scope includes the ones before it."""

    READ = "read"
    COMMANDS = "commands"
    ADMIN = "admin"


class Role(StrEnum):
    """An operator account's role."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Scope.READ: 0, Scope.COMMANDS: 1, Scope.ADMIN: 2}
_ROLE_SCOPE = {Role.VIEWER: Scope.READ, Role.OPERATOR: Scope.COMMANDS, Role.ADMIN: Scope.ADMIN}


def role_scopes(role: Role) -> frozenset[Scope]:
    """The scopes an account of this role holds."""
    return implied_scopes([_ROLE_SCOPE[role]])


def implied_scopes(scopes: list[Scope] | frozenset[Scope]) -> frozenset[Scope]:
    """The scopes granted by a list: each scope with every scope below it."""
    top = max((_RANK[scope] for scope in scopes), default=-1)
    return frozenset(scope for scope, rank in _RANK.items() if rank <= top)


def grants(held: frozenset[Scope], needed: Scope) -> bool:
    """Whether a credential holding `held` may use a route that needs `needed`."""
    return needed in held


# -- operator accounts -----------------------------------------------------------------------

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128

# scrypt at OWASP's "N=2^15, r=8, p=3" setting (Password Storage Cheat Sheet): 32 MiB and
# some 0.2 s a hash, so a stolen table is slow to attack; logins are rate-limited besides.
_N, _R, _P = 2**15, 8, 3
_MAXMEM = 64 * 1024 * 1024


def username_problem(username: str) -> str | None:
    """Why a username is unusable, or None."""
    if not re.fullmatch(USERNAME_PATTERN, username):
        return "username: 1-64 letters, digits or . _ @ -, starting with a letter or digit"
    return None


def password_problem(password: str) -> str | None:
    """Why an operator password is too weak or too long, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password: at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password: at most {MAX_PASSWORD_LENGTH} characters"
    return None


def hash_account_password(password: str, *, salt: bytes) -> str:
    """A self-describing salted scrypt hash of an operator password."""
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_account_password(password: str, stored: str) -> bool:
    """Compare a password with a stored hash in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(digest) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


# -- API keys and session tokens ---------------------------------------------------------------

API_KEY_PREFIX = "csk_"


def new_api_key(random: bytes) -> str:
    """An API key from 32 random bytes: `csk_` and 43 URL-safe characters."""
    return API_KEY_PREFIX + _urlsafe(random)


def new_token(random: bytes) -> str:
    """A session or CSRF token from random bytes."""
    return _urlsafe(random)


def token_digest(token: str) -> str:
    """What is stored of an API key or session token.

    Keys and tokens are 256 random bits, so a plain SHA-256 is enough to make a stolen
    table useless (the reasoning docs/security.md, "How they are stored", gives for
    AuthorizationKeys); a slow KDF
    would only slow every API request down.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens (CSRF, bootstrap key)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _urlsafe(random: bytes) -> str:
    return base64.urlsafe_b64encode(random).rstrip(b"=").decode()
