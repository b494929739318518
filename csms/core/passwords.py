"""Charger passwords (AuthorizationKey) stored only as salted scrypt hashes (SecWP A01.FR.08)."""

from __future__ import annotations

import hashlib
import hmac

_N, _R, _P = 2**14, 8, 1


def hash_password(password: bytes, *, salt: bytes) -> str:
    """A self-describing salted hash; the salt comes from the caller (no randomness here)."""
    digest = hashlib.scrypt(password, salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: bytes, stored: str) -> bool:
    """Compare a password with a stored hash in constant time.

    Bytes, never decoded: a raw AuthorizationKey may hold any byte value (OCPP-J §6.2.2).
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password, salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)
