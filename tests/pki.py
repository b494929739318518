"""Throwaway PKI for tests: a CA, server and client certificates, and CSRs, as PEM files.

Everything is generated with `cryptography` into a directory the test owns (usually
pytest's `tmp_path`). Keys are ECDSA P-256 by default (fast to make, and allowed by the
Security Whitepaper, A00.FR.3xx); pass `key_type="rsa"` for RSA 2048.

    ca = make_ca(tmp_path)
    server = make_server_cert(ca, tmp_path)                  # for 127.0.0.1 and localhost
    client = make_client_cert(ca, tmp_path, common_name="CP-1", organization="ACME")
    ssl_context.load_cert_chain(server.cert_file, server.key_file)
    ssl_context.load_verify_locations(ca.cert_file)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, in memory and as PEM files."""

    certificate: x509.Certificate
    key: PrivateKey
    cert_file: Path
    key_file: Path
    # The issuer's chain after this certificate (empty for a self-signed root).
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> str:
        return pem(self.certificate)

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)

    @property
    def chain_pem(self) -> str:
        """This certificate followed by its issuers up to (not including) the root."""
        return "".join(pem(c) for c in (self.certificate, *self.chain))


def new_key(key_type: KeyType = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def subject(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_ca(
    directory: Path,
    *,
    common_name: str = "csms test CA",
    organization: str | None = "csms tests",
    parent: Issued | None = None,
    name: str = "ca",
    days: int = 30,
    key_type: KeyType = "ec",
) -> Issued:
    """A CA certificate: self-signed, or an intermediate signed by `parent`.

    Writes `{name}.pem` and `{name}.key` into `directory`.
    """
    key = new_key(key_type)
    name_ = subject(common_name, organization)
    issuer_name = name_ if parent is None else parent.certificate.subject
    builder = (
        _builder(name_, issuer_name, key, days=days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = key if parent is None else parent.key
    certificate = builder.sign(signer, hashes.SHA256())
    chain = () if parent is None else (parent.certificate, *parent.chain)
    if chain and chain[-1].subject == chain[-1].issuer:
        chain = chain[:-1]  # the root stays out of a presented chain
    return _write(directory, name, certificate, key, chain)


def make_server_cert(
    ca: Issued,
    directory: Path,
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    common_name: str | None = None,
    name: str = "server",
    days: int = 30,
    not_before: datetime | None = None,
    key_type: KeyType = "ec",
) -> Issued:
    """A TLS server certificate for `hosts` (IP addresses and DNS names), signed by `ca`.

    Pass `not_before`/`days` in the past to make an expired one.
    """
    key = new_key(key_type)
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    certificate = (
        _builder(
            subject(common_name or hosts[0]),
            ca.certificate.subject,
            key,
            days=days,
            not_before=not_before,
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return _write(directory, name, certificate, key, _chain_below_root(ca))


def make_client_cert(
    ca: Issued,
    directory: Path,
    *,
    common_name: str,
    organization: str | None = None,
    name: str | None = None,
    days: int = 30,
    not_before: datetime | None = None,
    key_type: KeyType = "ec",
) -> Issued:
    """A TLS client certificate (a charger's, for security profile 3) signed by `ca`.

    Written as `{name}.pem`/`{name}.key`; the name defaults to the common name.
    """
    key = new_key(key_type)
    certificate = (
        _builder(
            subject(common_name, organization),
            ca.certificate.subject,
            key,
            days=days,
            not_before=not_before,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return _write(directory, name or common_name, certificate, key, _chain_below_root(ca))


def make_csr(
    *, common_name: str, organization: str | None = None, key: PrivateKey | None = None
) -> tuple[str, PrivateKey]:
    """A PEM certificate signing request (as a charger sends in SignCertificate) and its key."""
    key = key or new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(common_name, organization))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def sign_csr(
    ca: Issued,
    csr_pem: str,
    *,
    days: int = 30,
    not_before: datetime | None = None,
) -> x509.Certificate:
    """A client certificate for a CSR, signed by `ca` (what a CSMS answers SignCertificate with).

    Pass `not_before` to match a charger whose clock is not the wall clock.
    """
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def load_chain(text: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, in order."""
    return x509.load_pem_x509_certificates(text.encode())


def _chain_below_root(ca: Issued) -> tuple[x509.Certificate, ...]:
    if ca.certificate.subject == ca.certificate.issuer:
        return ()
    return (ca.certificate, *ca.chain)


def _builder(
    subject_name: x509.Name,
    issuer_name: x509.Name,
    key: PrivateKey,
    *,
    days: int,
    not_before: datetime | None = None,
) -> x509.CertificateBuilder:
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
    )


def _write(
    directory: Path,
    name: str,
    certificate: x509.Certificate,
    key: PrivateKey,
    chain: tuple[x509.Certificate, ...],
) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{name}.pem"
    key_file = directory / f"{name}.key"
    cert_file.write_text("".join(pem(c) for c in (certificate, *chain)))
    key_file.write_text(key_pem(key))
    key_file.chmod(0o600)
    return Issued(
        certificate=certificate, key=key, cert_file=cert_file, key_file=key_file, chain=chain
    )
