r"""Charge point identities: what a URL may name.

docs/ocpp.md, "Connecting": 1-48 characters, no '/', whitespace or control characters, none
of the characters a URL path cannot carry as they are (RFC 3986 §2.2 and §7.3: # < > \ " ` { }),
not '.' or '..', and not "ocpp" alone (the path '/ocpp' names no charger).
"""

from __future__ import annotations

from urllib.parse import unquote

MAX_IDENTITY_LENGTH = 48
# Characters that cannot stand in a URL path unescaped (RFC 3986 §2.2 gen-delims and the
# characters §7.3 and browsers treat as unsafe): an identity with one is a mistake or a probe.
UNSAFE_CHARACTERS = frozenset('#<>\\"`{}')
# The path prefix of '/ocpp/{id}': '/ocpp' alone is that prefix without an identity.
_PREFIX = "ocpp"


def identity_from_path(path: str) -> tuple[str | None, str | None]:
    """Extract the identity from '/ocpp/{id}' or '/{id}'.

    Returns:
        (identity, None) when the path names a valid identity, otherwise (None, reason).
        The reason starts with 'not found' for a path we do not serve.
    """
    raw_path = path.split("?", 1)[0]
    segments = raw_path.split("/")
    if len(segments) == 2 and segments[1] == _PREFIX:
        return None, "not found: /ocpp needs a chargePointId: /ocpp/{chargePointId}"
    if len(segments) == 2:
        raw = segments[1]
    elif len(segments) == 3 and segments[1] == "ocpp":
        raw = segments[2]
    else:
        return None, "not found: path must be /ocpp/{chargePointId} or /{chargePointId}"
    # OCPP-J §3.1.1: the identity is percent-encoded in the URL (example 'RDAM%20123').
    identity = unquote(raw, errors="strict") if _is_decodable(raw) else None
    if identity is None:
        return None, "invalid charge point identity: bad percent-encoding"
    reason = identity_problem(identity)
    return (None, reason) if reason else (identity, None)


def identity_problem(identity: str) -> str | None:
    """Why an identity is unacceptable, or None when it is fine."""
    if not 1 <= len(identity) <= MAX_IDENTITY_LENGTH:
        return f"invalid charge point identity: must have 1 to {MAX_IDENTITY_LENGTH} characters"
    if identity in (".", ".."):
        return "invalid charge point identity: '.' and '..' are not identities"
    for char in identity:
        if char == "/" or char.isspace() or not char.isprintable():
            return "invalid charge point identity: no '/', whitespace or control characters"
        if char in UNSAFE_CHARACTERS:
            return 'invalid charge point identity: none of # < > \\ " ` { }'
    return None


def _is_decodable(raw: str) -> bool:
    try:
        unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
