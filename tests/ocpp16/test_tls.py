"""Reading who a failed TLS handshake was from: the client's plaintext TLS 1.2 records."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from csms.core.security_events import SecurityEventType
from csms.ocpp16.tls import certificate_subject, client_certificate_in, describe_failure
from tests import pki


def record(kind: int, fragment: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(fragment).to_bytes(2, "big") + fragment


def handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def certificate_message(*ders: bytes) -> bytes:
    entries = b"".join(len(der).to_bytes(3, "big") + der for der in ders)
    return handshake(11, len(entries).to_bytes(3, "big") + entries)


@pytest.fixture(scope="module")
def der(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(Path(directory))
    client = pki.make_client_cert(ca, Path(directory), common_name="CP-7", organization="ACME")
    return client.certificate.public_bytes(serialization.Encoding.DER)


def test_the_certificate_of_a_tls_1_2_client_is_found(der: bytes) -> None:
    """ClientHello, then Certificate split over two records: the leaf's DER comes back."""
    messages = handshake(1, b"\x03\x03" + b"\x00" * 40) + certificate_message(der, b"chain")
    middle = len(messages) // 2
    stream = record(22, messages[:middle]) + record(22, messages[middle:]) + record(20, b"\x01")
    assert client_certificate_in(stream) == der
    subject = certificate_subject(der)
    assert subject is not None
    assert (subject.common_name, subject.organization) == ("CP-7", "ACME")


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"GET / HTTP/1.1\r\n\r\n",  # plain HTTP to the TLS port
        # TLS 1.3: after the ClientHello only ChangeCipherSpec and encrypted records.
        record(22, handshake(1, b"\x03\x03")) + record(20, b"\x01") + record(23, b"\xff" * 64),
        record(22, certificate_message()),  # a client without a certificate
        record(22, handshake(11, b"\x00\x00\x10\x00\x00\x20" + b"x" * 4)),  # truncated
    ],
)
def test_no_certificate_is_read_where_there_is_none(stream: bytes) -> None:
    """TLS 1.3, no certificate, garbage: nothing, never an exception."""
    assert client_certificate_in(stream) is None


def test_failures_map_to_reasons_and_security_events() -> None:
    """Verification, version and cipher failures are SecWP §8 events; resets are not."""
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_message = "certificate has expired"
    old = ssl.SSLError(1, "unsupported protocol")
    old.reason = "UNSUPPORTED_PROTOCOL"
    cipher = ssl.SSLError(1, "no shared cipher")
    cipher.reason = "NO_SHARED_CIPHER"
    assert describe_failure(expired) == (
        "certificate has expired",
        SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE,
    )
    assert describe_failure(old) == ("unsupported_protocol", SecurityEventType.INVALID_TLS_VERSION)
    assert describe_failure(cipher) == (
        "no_shared_cipher",
        SecurityEventType.INVALID_TLS_CIPHER_SUITE,
    )
    assert describe_failure(ConnectionAbortedError()) == ("handshake timed out", None)
    assert describe_failure(ConnectionResetError()) == (
        "connection lost during the handshake",
        None,
    )
