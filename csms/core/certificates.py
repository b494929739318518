"""Charger certificates from SignCertificate CSRs (SecWP A02/A03): check a CSR, then sign it.

Pure: PEM text, the signing authority, the time and the serial number come in; a checked
request or a signed certificate goes out. Reading the CA files and sending the result to
the charger are the adapters' business.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.core.security import ClientCertificate, ClientCnRule, Registration, certificate_problem

# SecWP A00.FR.502/503: RSA keys of at least 2048 bits, elliptic-curve keys of at least 224.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 224
# A charger whose clock runs a little slow would find a certificate that starts "now" not
# yet valid and discard it (A02.FR.06/07), so validity starts a few minutes back.
BACKDATE = timedelta(minutes=5)
# CertificateSigned.req certificateChain is string[0..10000] (SecWP §5.1).
MAX_CHAIN_CHARS = 10000

IssuerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why (safe to log, no key material)."""


@dataclass(frozen=True)
class SigningAuthority:
    """The CA csms signs charger certificates with, and the chain sent after them."""

    certificate: x509.Certificate
    key: IssuerKey
    # Intermediate CA certificates sent after the leaf; never a self-signed root (the
    # charger has that as its CentralSystemRootCertificate).
    chain: tuple[x509.Certificate, ...] = ()


@dataclass(frozen=True)
class SignedCertificate:
    """A charger certificate csms issued."""

    certificate: x509.Certificate
    # What CertificateSigned.req carries: the leaf, then the intermediates (PEM).
    chain_pem: str

    @property
    def leaf_pem(self) -> str:
        """The certificate alone (PEM)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def serial_hex(self) -> str:
        """The serial as SecWP §6.1 spells it: upper-case hex without leading zeroes."""
        return format(self.certificate.serial_number, "X")

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def load_authority(ca_pem: bytes, key_pem: bytes) -> SigningAuthority:
    """The signing authority from the CA file (the first certificate is the issuer) and key.

    Raises:
        ValueError: unreadable PEM, an encrypted or unsupported key, a key that does not
            belong to the first certificate, or a first certificate that is not a CA.
    """
    try:
        certificates = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise ValueError("ca_file holds no readable pem certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:  # encrypted key, no password given
        raise ValueError("ca key is encrypted; give an unencrypted key file") from exc
    except UnsupportedAlgorithm as exc:
        raise ValueError("ca key type is not supported") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("ca key must be rsa or ecdsa (SecWP A00.FR.505)")
    issuer = certificates[0]
    if _spki(key.public_key()) != _spki(issuer.public_key()):
        raise ValueError("ca key does not belong to the first certificate of ca_file")
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ValueError("the first certificate of ca_file is not a ca certificate")
    chain = tuple(
        certificate
        for certificate in certificates[1:]
        if certificate.subject != certificate.issuer  # roots stay out of the sent chain
    )
    if issuer.subject != issuer.issuer:
        chain = (issuer, *chain)
    return SigningAuthority(certificate=issuer, key=key, chain=chain)


def check_csr(
    csr_pem: str,
    *,
    identity: str,
    serial_numbers: Sequence[str] = (),
    rule: ClientCnRule = ClientCnRule.IDENTITY,
    organization: str = "",
) -> x509.CertificateSigningRequest:
    """The CSR of a SignCertificate.req, if csms may sign it for this charger.

    The subject is held to the same rule as a profile-3 client certificate, so the
    certificate csms signs is one csms would accept at the TLS listener: CN = the
    identity, or a serial number (A00.FR.405), and O = `organization` when set
    (A00.FR.404, A02.FR.13: the charger puts its CpoName there).

    Raises:
        CsrRejected: unreadable, badly signed, a weak key, or a subject that does not fit.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise CsrRejected("csr is not a pem certificate signing request") from None
    try:
        signed = csr.is_signature_valid
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        signed = False
    if not signed:
        raise CsrRejected("csr signature is invalid")
    _check_key(csr)
    common_name = _only(csr.subject, NameOID.COMMON_NAME)
    if not common_name:
        raise CsrRejected("csr subject has no single common name")
    if _is_url_or_ip(common_name):
        # SecWP A00.FR.511: a charger CN is never a URL or an IP address, so that charger
        # certificates cannot pass for Central System certificates.
        raise CsrRejected("csr common name is a url or an ip address")
    problem = certificate_problem(
        ClientCertificate(
            common_name=common_name,
            organization=_only(csr.subject, NameOID.ORGANIZATION_NAME),
        ),
        identity=identity,
        registration=Registration(
            security_profile=0, has_password=False, serial_numbers=tuple(serial_numbers)
        ),
        rule=rule,
        organization=organization,
    )
    if problem is not None:
        raise CsrRejected(problem.replace("client certificate", "csr"))
    return csr


def sign_csr(
    csr: x509.CertificateSigningRequest,
    *,
    authority: SigningAuthority,
    now: datetime,
    days: int,
    serial_number: int,
) -> SignedCertificate:
    """A charger certificate for a checked CSR: a TLS client certificate, SHA-256.

    Validity is `days` from a few minutes before `now`, but never past the issuer's own
    end, which would make the path invalid (RFC 5280 §6).

    Raises:
        CsrRejected: the certificate would not fit in CertificateSigned.req.
    """
    not_before = now - BACKDATE
    not_after = min(not_before + timedelta(days=days), authority.certificate.not_valid_after_utc)
    public_key = csr.public_key()
    issuer_key = authority.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(serial_number)  # SecWP A00.FR.508
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # SecWP A00.FR.512: key usage limited to what a TLS client certificate does.
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )
    # SecWP A00.FR.505/506: RSA-PSS or ECDSA, with SHA-256.
    rsa_padding = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        if isinstance(authority.key, rsa.RSAPrivateKey)
        else None
    )
    certificate = builder.sign(authority.key, hashes.SHA256(), rsa_padding=rsa_padding)
    chain_pem = "".join(
        item.public_bytes(serialization.Encoding.PEM).decode()
        for item in (certificate, *authority.chain)
    )
    if len(chain_pem) > MAX_CHAIN_CHARS:
        raise CsrRejected(f"certificate chain exceeds {MAX_CHAIN_CHARS} characters")
    return SignedCertificate(certificate=certificate, chain_pem=chain_pem)


def _check_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise CsrRejected("csr public key is not supported") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRejected(f"csr rsa key has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            raise CsrRejected(f"csr ec key has {key.curve.key_size} bits, fewer than {MIN_EC_BITS}")
        return
    raise CsrRejected("csr key must be rsa or ecdsa")


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _only(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    """The value of an attribute that appears exactly once, else None."""
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode(errors="replace")


def _is_url_or_ip(text: str) -> bool:
    if "://" in text:
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
