"""Charger passwords: salted hashes that name their scheme, compared as bytes, upgraded."""

from __future__ import annotations

import hashlib
import time

import pytest

from csms.core.passwords import (
    TEXT_PASSWORD_COST,
    PasswordHasher,
    Scheme,
    ScryptCost,
    is_random_key,
)
from tests.support import MS

PEPPER = b"p" * 32
KEY = bytes.fromhex("00112233445566778899aabbccddeeff01234567")  # 20 random-looking bytes
TEXT = b"correct-horse-battery"
SALT = b"salt-one........"


def legacy_scrypt_hash(secret: bytes, salt: bytes) -> str:
    """A hash as csms stored it before the upgrade: scrypt at n=2**14 for every secret."""
    digest = hashlib.scrypt(secret, salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


@pytest.mark.parametrize(
    ("secret", "random"),
    [
        (KEY, True),
        (bytes(range(16)), True),  # non-printable bytes: a key
        (TEXT, False),  # printable text: a password
        (b"0123456789abcdef", False),  # 16 printable bytes: treated as text, to be safe
        (b"\xff" * 21, False),  # 21 bytes is no AuthorizationKey (A00.FR.205)
    ],
)
def test_keys_are_told_from_text_passwords(secret: bytes, random: bool) -> None:
    """16-20 bytes that are not printable text are an AuthorizationKey's raw bytes."""
    assert is_random_key(secret) is random


def test_keys_get_a_keyed_hash_and_text_gets_scrypt() -> None:
    """A key is HMAC-SHA256 with the pepper; a text password scrypt at the tuned cost."""
    hasher = PasswordHasher(pepper=PEPPER)
    key_hash = hasher.hash(KEY, salt=SALT)
    text_hash = hasher.hash(TEXT, salt=SALT)
    assert key_hash.startswith(f"hmac-sha256${hasher.pepper_id}${SALT.hex()}$")
    assert text_hash.startswith(f"scrypt${TEXT_PASSWORD_COST.n}$8$1${SALT.hex()}$")
    assert not hasher.is_slow(key_hash)
    assert hasher.is_slow(text_hash)
    for secret, stored in ((KEY, key_hash), (TEXT, text_hash)):
        assert hasher.verify(secret, stored).ok
        assert not hasher.verify(secret + b"x", stored).ok
        assert not hasher.verify(secret, stored).upgrade


def test_hash_is_salted() -> None:
    """The same secret with two salts hashes differently; both verify."""
    hasher = PasswordHasher(pepper=PEPPER)
    first, second = hasher.hash(KEY, salt=SALT), hasher.hash(KEY, salt=b"salt-two........")
    assert first != second
    assert hasher.verify(KEY, first).ok
    assert hasher.verify(KEY, second).ok


def test_a_key_hash_needs_the_same_pepper() -> None:
    """A keyed hash made with another pepper cannot be checked, and says so."""
    stored = PasswordHasher(pepper=PEPPER).hash(KEY, salt=SALT)
    other = PasswordHasher(pepper=b"q" * 32).verify(KEY, stored)
    assert not other.ok
    assert other.problem == "password hash made with another pepper"
    assert not PasswordHasher().verify(KEY, stored).ok


def test_without_a_pepper_keys_get_scrypt() -> None:
    """No pepper (PostgreSQL without one configured): keys are hashed like text."""
    hasher = PasswordHasher()
    assert hasher.scheme_for(KEY) is Scheme.SCRYPT
    stored = hasher.hash(KEY, salt=SALT)
    assert stored.startswith("scrypt$")
    assert hasher.verify(KEY, stored).ok


@pytest.mark.parametrize("secret", [KEY, TEXT])
def test_old_scrypt_hashes_verify_and_ask_for_an_upgrade(secret: bytes) -> None:
    """Hashes from before (scrypt n=2**14 for everything) still verify, and are outdated."""
    check = PasswordHasher(pepper=PEPPER).verify(secret, legacy_scrypt_hash(secret, SALT))
    assert check.ok
    assert check.upgrade


def test_a_failed_check_never_asks_for_an_upgrade() -> None:
    """Only a secret that matched may replace its hash."""
    check = PasswordHasher(pepper=PEPPER).verify(b"wrong-password-x", legacy_scrypt_hash(KEY, SALT))
    assert (check.ok, check.upgrade) == (False, False)


def test_binary_passwords_are_compared_as_bytes() -> None:
    """A raw 20-byte key with non-printable bytes works (OCPP-J 1.6 §6.2.2: the
    raw key bytes are the password; docs/security.md, "Passwords")."""
    key = bytes(range(20))
    hasher = PasswordHasher(pepper=PEPPER)
    assert hasher.verify(key, hasher.hash(key, salt=b"0" * 16)).ok


@pytest.mark.parametrize(
    "stored",
    [
        "not-a-hash",
        "md5$1$2$3$00$00",
        "scrypt$x$8$1$00$00",
        "hmac-sha256$id$zz$00",
        # A forged cost must not make a login burn memory: refused unchecked.
        f"scrypt${2**24}$8$1${SALT.hex()}${'00' * 64}",
    ],
)
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    """A corrupt or hostile stored value refuses every password, with a reason."""
    check = PasswordHasher(pepper=PEPPER).verify(b"x" * 16, stored)
    assert not check.ok
    assert check.problem is not None


def test_costs_fit_the_reconnect_storm() -> None:
    """10,000 key checks take well under a second; a text check stays in the millisecond
    range (the storm budget in docs/security.md), and much cheaper than the old cost."""
    hasher = PasswordHasher(pepper=PEPPER)
    key_hash = hasher.hash(KEY, salt=SALT)
    started = time.perf_counter()
    for _ in range(10_000):
        assert hasher.verify(KEY, key_hash).ok
    assert time.perf_counter() - started < 1_000 * MS
    assert TEXT_PASSWORD_COST == ScryptCost(n=2**10, r=8, p=1)
    memory = 128 * TEXT_PASSWORD_COST.n * TEXT_PASSWORD_COST.r
    assert memory == 1024 * 1024
