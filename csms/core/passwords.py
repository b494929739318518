"""Charger passwords, kept only as salted hashes that name their scheme (SecWP A01.FR.08).

Two schemes, chosen by what the secret is (contract v1.1, "Decisions"; docs/security.md):

- An **AuthorizationKey** is 16-20 random bytes (A00.FR.205). Nobody can guess 128 bits
  offline, so a slow KDF buys nothing and would cost a reconnect storm ~40 ms per charger.
  It is kept as HMAC-SHA256 over a per-charger salt and the key, keyed by a server-side
  pepper that is not in the database: ``hmac-sha256$<pepper id>$<salt hex>$<digest hex>``.
- A **text password** (16-40 characters, possibly chosen by a person) keeps a memory-hard
  KDF, scrypt, at a cost tuned so that 10,000 chargers re-authenticating after a restart
  fit the boot-storm target: ``scrypt$<n>$<r>$<p>$<salt hex>$<digest hex>``.

A stored hash says which scheme and which parameters made it, so a hash made under older
rules (scrypt of a key, or another scrypt cost) still verifies and is replaced after the
next successful login (`Check.upgrade`). Salts come from the caller: no randomness here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum


class Scheme(StrEnum):
    """How a stored hash was made: the first field of its text."""

    HMAC_SHA256 = "hmac-sha256"
    SCRYPT = "scrypt"


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's work factors: memory is 128 * n * r bytes, time grows with n * r * p."""

    n: int
    r: int
    p: int


# 1 MiB and about 3 ms per check on one core: 10,000 re-authentications after a restart
# take ~30 s of CPU, shared by the thread pool's cores (docs/security.md). The old cost
# (n = 2**14, 16 MiB, ~40-60 ms) took 400-600 s; hashes made with it are upgraded.
TEXT_PASSWORD_COST = ScryptCost(n=2**10, r=8, p=1)
# Hashes in the database are checked with the cost they name, within these bounds, so a
# forged or corrupt row cannot make a login burn gigabytes or minutes.
_MAX_SCRYPT_N = 2**20
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024

# SecWP A00.FR.205: an AuthorizationKey is 16 to 20 bytes.
_KEY_BYTES = range(16, 21)


def is_random_key(secret: bytes) -> bool:
    """Whether `secret` is an AuthorizationKey's raw bytes rather than a text password.

    A text password is 16-40 printable characters without spaces. Raw key bytes almost
    never are (the chance that 16 random bytes all fall in that range is about 1e-7); when
    they do, the secret is treated as text, which only makes its check slower.
    """
    if len(secret) not in _KEY_BYTES:
        return False
    try:
        text = secret.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(char) < 0x21 or ord(char) == 0x7F for char in text)


@dataclass(frozen=True)
class Check:
    """The outcome of checking a presented secret against a stored hash."""

    ok: bool
    # The hash is of an older scheme or cost: store `PasswordHasher.hash(secret)` instead.
    upgrade: bool = False
    # Why the hash could not be checked at all (e.g. it was made with another pepper).
    problem: str | None = None


@dataclass(frozen=True)
class PasswordHasher:
    """Hashes and checks charger secrets with the server's pepper.

    Without a pepper (none configured and no place to keep a generated one) every secret
    is hashed with scrypt: slower to check, never weaker.
    """

    pepper: bytes | None = None
    cost: ScryptCost = TEXT_PASSWORD_COST

    @property
    def pepper_id(self) -> str | None:
        """A short public name of the pepper, so a hash made with another one is recognised."""
        if self.pepper is None:
            return None
        return hashlib.sha256(b"csms pepper id\x00" + self.pepper).hexdigest()[:8]

    def scheme_for(self, secret: bytes) -> Scheme:
        """The scheme a new hash of `secret` uses."""
        if self.pepper is not None and is_random_key(secret):
            return Scheme.HMAC_SHA256
        return Scheme.SCRYPT

    def hash(self, secret: bytes, *, salt: bytes) -> str:
        """A self-describing salted hash of `secret`; slow for text passwords (scrypt)."""
        if self.scheme_for(secret) is Scheme.HMAC_SHA256:
            assert self.pepper is not None
            digest = _keyed_digest(self.pepper, salt, secret)
            return f"{Scheme.HMAC_SHA256}${self.pepper_id}${salt.hex()}${digest.hex()}"
        cost = self.cost
        digest = _scrypt(secret, salt, cost)
        return f"{Scheme.SCRYPT}${cost.n}${cost.r}${cost.p}${salt.hex()}${digest.hex()}"

    def is_slow(self, stored: str) -> bool:
        """Whether checking against `stored` runs a KDF (so: off the event loop)."""
        return not stored.startswith(f"{Scheme.HMAC_SHA256}$")

    def verify(self, secret: bytes, stored: str) -> Check:
        """Compare `secret` with a stored hash in constant time (bytes, never decoded)."""
        scheme, _, rest = stored.partition("$")
        if scheme == Scheme.HMAC_SHA256:
            return self._verify_keyed(secret, rest)
        if scheme == Scheme.SCRYPT:
            return self._verify_scrypt(secret, rest)
        return Check(ok=False, problem="unknown password hash scheme")

    def _verify_keyed(self, secret: bytes, fields: str) -> Check:
        try:
            pepper_id, salt, digest = fields.split("$")
            salt_bytes, expected = bytes.fromhex(salt), bytes.fromhex(digest)
        except ValueError:
            return Check(ok=False, problem="malformed password hash")
        if self.pepper is None or pepper_id != self.pepper_id:
            return Check(ok=False, problem="password hash made with another pepper")
        candidate = _keyed_digest(self.pepper, salt_bytes, secret)
        return Check(ok=hmac.compare_digest(candidate, expected))

    def _verify_scrypt(self, secret: bytes, fields: str) -> Check:
        try:
            n, r, p, salt, digest = fields.split("$")
            cost = ScryptCost(n=int(n), r=int(r), p=int(p))
            salt_bytes, expected = bytes.fromhex(salt), bytes.fromhex(digest)
        except ValueError:
            return Check(ok=False, problem="malformed password hash")
        if not _bounded(cost):
            return Check(ok=False, problem="password hash cost out of bounds")
        candidate = _scrypt(secret, salt_bytes, cost, length=len(expected))
        if not hmac.compare_digest(candidate, expected):
            return Check(ok=False)
        outdated = self.scheme_for(secret) is not Scheme.SCRYPT or cost != self.cost
        return Check(ok=True, upgrade=outdated)


def _keyed_digest(pepper: bytes, salt: bytes, secret: bytes) -> bytes:
    # The salt is fixed-length (16 bytes from the callers), so salt || secret is unambiguous.
    return hmac.new(pepper, salt + secret, hashlib.sha256).digest()


def _scrypt(secret: bytes, salt: bytes, cost: ScryptCost, *, length: int = 64) -> bytes:
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=_MAX_SCRYPT_MEMORY,
        dklen=length,
    )


def _bounded(cost: ScryptCost) -> bool:
    return (
        1 < cost.n <= _MAX_SCRYPT_N
        and cost.n & (cost.n - 1) == 0
        and 1 <= cost.r <= 32
        and 1 <= cost.p <= 16
        and 128 * cost.n * cost.r * (cost.p + 1) <= _MAX_SCRYPT_MEMORY
    )
