"""Credentials tokens: how a partner's token is presented, stored and compared.

Spec: ``ocpi/ocpi`` tag ``2.2.1``, transport_and_format §Authorization header, credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class PresentedToken:
    """One reading of an Authorization header: the credentials token, and whether it came
    Base64-encoded as OCPI 2.2.1 requires (False: the unencoded OCPI 2.1.1 form)."""

    token: str
    encoded: bool


def presented_tokens(header: str | None) -> list[PresentedToken]:
    """The credentials tokens an `Authorization: Token <...>` header may carry.

    transport_and_format §Authorization header: the parameter "contains the 'credentials
    token' Base64 encoded". Some partners still send it unencoded (OCPI 2.1.1); the caller
    accepts that reading only for partners configured so. Both readings are returned when
    the text is valid Base64 of printable ASCII, the encoded one first.
    """
    if header is None:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value or not _PRINTABLE.fullmatch(value):
        return []
    found = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if decoded and _PRINTABLE.fullmatch(decoded) and len(decoded) <= 64:
        found.append(PresentedToken(token=decoded, encoded=True))
    if len(value) <= 64:
        found.append(PresentedToken(token=value, encoded=False))
    return found


def authorization_header(token: str, *, unencoded: bool = False) -> str:
    """The Authorization header value for calling a partner with its token."""
    if unencoded:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode("ascii")).decode("ascii")


def token_digest(token: str) -> str:
    """How a credentials token is kept: SHA-256, hex. Tokens are random (32 bytes from
    csms, or the partner's own), so a fast hash suffices; the raw token is never stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_match(stored: str | None, presented: str) -> bool:
    """Constant-time comparison of a stored digest with a presented token's digest."""
    if not stored:
        return False
    return hmac.compare_digest(stored.encode("ascii"), presented.encode("ascii"))


def is_credentials_token(token: str) -> bool:
    """credentials §Credentials object: token is string(64), "ASCII only"; we also refuse
    whitespace, which an Authorization header cannot carry."""
    return 0 < len(token) <= 64 and bool(_PRINTABLE.fullmatch(token))
