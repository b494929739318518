"""Charge point identities: what a URL may name.

docs/ocpp.md, "Connecting": 1-48 characters, no '/', whitespace or control characters, not
'.' or '..'.
"""

from __future__ import annotations

from urllib.parse import unquote

MAX_IDENTITY_LENGTH = 48


def identity_from_path(path: str) -> tuple[str | None, str | None]:
    """Extract the identity from '/ocpp/{id}' or '/{id}'.

    Returns:
        (identity, None) when the path names a valid identity, otherwise (None, reason).
        The reason starts with 'not found' for a path we do not serve.
    """
    raw_path = path.split("?", 1)[0]
    segments = raw_path.split("/")
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
    return None


def _is_decodable(raw: str) -> bool:
    try:
        unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return False
    return True
