"""Charger passwords are stored as salted hashes and compared as bytes."""

from __future__ import annotations

from csms.core.passwords import hash_password, verify_password


def test_hash_is_salted_and_verifies() -> None:
    """The same password with two salts hashes differently; both verify; others do not."""
    first = hash_password(b"0123456789abcdef", salt=b"salt-one........")
    second = hash_password(b"0123456789abcdef", salt=b"salt-two........")
    assert first != second
    assert "0123456789abcdef" not in first
    assert verify_password(b"0123456789abcdef", first)
    assert verify_password(b"0123456789abcdef", second)
    assert not verify_password(b"0123456789abcdeX", first)


def test_binary_passwords_are_compared_as_bytes() -> None:
    """A raw 20-byte key with non-printable bytes works (reliability note F15)."""
    key = bytes(range(20))
    assert verify_password(key, hash_password(key, salt=b"0" * 16))


def test_malformed_stored_hash_never_verifies() -> None:
    """A corrupt stored value refuses every password."""
    assert not verify_password(b"x" * 16, "not-a-hash")
    assert not verify_password(b"x" * 16, "md5$1$2$3$00$00")
