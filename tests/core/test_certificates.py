"""Charger certificates from CSRs: which CSRs csms signs, and what it signs (SecWP A02/A03)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.core.certificates import (
    BACKDATE,
    CsrRejected,
    SigningAuthority,
    check_csr,
    load_authority,
    sign_csr,
)
from csms.core.security import ClientCnRule
from tests.pki import Issued, make_ca, make_client_cert, make_csr

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return make_ca(tmp_path_factory.mktemp("pki"), common_name="Test Root", days=3650)


def authority_of(ca: Issued) -> SigningAuthority:
    return load_authority(ca.cert_file.read_bytes(), ca.key_file.read_bytes())


# -- load_authority ------------------------------------------------------------------------


def test_root_ca_is_the_issuer_and_sends_no_chain(root: Issued) -> None:
    """A self-signed CA signs; the root itself is not sent (the charger already has it)."""
    authority = authority_of(root)
    assert authority.certificate == root.certificate
    assert authority.chain == ()


def test_intermediate_ca_is_sent_after_the_leaf(root: Issued, tmp_path: Path) -> None:
    """With an intermediate first in ca_file, it goes in the chain; the root stays out."""
    sub = make_ca(tmp_path, common_name="Test Sub", parent=root, name="sub")
    bundle = sub.cert_pem + root.cert_pem
    authority = load_authority(bundle.encode(), sub.key_pem.encode())
    assert authority.certificate == sub.certificate
    assert authority.chain == (sub.certificate,)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong key", "does not belong"),
        ("not a ca", "not a ca certificate"),
        ("garbage", "no readable pem"),
    ],
)
def test_unusable_authority_is_refused(
    root: Issued, tmp_path: Path, case: str, message: str
) -> None:
    """A key of another certificate, a leaf as CA, or unreadable PEM: ValueError."""
    other = make_ca(tmp_path, name="other")
    leaf = make_client_cert(root, tmp_path, common_name="CP-1")
    cert_pem, key_pem = {
        "wrong key": (root.cert_pem, other.key_pem),
        "not a ca": (leaf.cert_pem, leaf.key_pem),
        "garbage": ("not pem", root.key_pem),
    }[case]
    with pytest.raises(ValueError, match=message):
        load_authority(cert_pem.encode(), key_pem.encode())


# -- check_csr -----------------------------------------------------------------------------


def _tampered(csr_pem: str) -> str:
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    )
    der[-2] ^= 0x01  # inside the signature value: the structure stays readable
    body = x509.load_der_x509_csr(bytes(der))
    return body.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("subject", "rule", "organization", "serials", "reason"),
    [
        (("CP-1", None), ClientCnRule.IDENTITY, "", (), None),
        (("CP-1", "ACME"), ClientCnRule.IDENTITY, "ACME", (), None),
        (("CP-2", None), ClientCnRule.IDENTITY, "", (), "CN does not match"),
        (("CP-1", "Other"), ClientCnRule.IDENTITY, "ACME", (), "organization does not match"),
        (("CP-1", None), ClientCnRule.IDENTITY, "ACME", (), "organization does not match"),
        (("SN-77", None), ClientCnRule.SERIAL, "", ("SN-77",), None),
        (("CP-1", None), ClientCnRule.SERIAL, "", ("SN-77",), "serial number"),
        (("anything", None), ClientCnRule.NONE, "", (), None),
        (("10.0.0.7", None), ClientCnRule.NONE, "", (), "url or an ip"),
        (("https://cp.example", None), ClientCnRule.NONE, "", (), "url or an ip"),
    ],
)
def test_csr_subject_rules(
    subject: tuple[str, str | None],
    rule: ClientCnRule,
    organization: str,
    serials: tuple[str, ...],
    reason: str | None,
) -> None:
    """CN = identity or serial (A00.FR.405), O = CPO (A00.FR.404), no URL/IP (A00.FR.511)."""
    csr_pem, _ = make_csr(common_name=subject[0], organization=subject[1])

    def check() -> x509.CertificateSigningRequest:
        return check_csr(
            csr_pem, identity="CP-1", serial_numbers=serials, rule=rule, organization=organization
        )

    if reason is None:
        name = check().subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert name == subject[0]
    else:
        with pytest.raises(CsrRejected, match=reason):
            check()


def test_csr_that_is_not_pem_is_rejected() -> None:
    """Garbage in the csr field is a rejection, not a crash."""
    with pytest.raises(CsrRejected, match="not a pem"):
        check_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", identity="CP-1")


def test_csr_with_a_bad_signature_is_rejected() -> None:
    """A CSR whose self-signature does not verify proves no possession of the key."""
    csr_pem, _ = make_csr(common_name="CP-1")
    with pytest.raises(CsrRejected, match="signature"):
        check_csr(_tampered(csr_pem), identity="CP-1")


def test_csr_with_a_weak_key_is_rejected() -> None:
    """RSA below 2048 bits is refused (SecWP A00.FR.502)."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr_pem, _ = make_csr(common_name="CP-1", key=weak)
    with pytest.raises(CsrRejected, match="1024 bits"):
        check_csr(csr_pem, identity="CP-1")


# -- sign_csr ------------------------------------------------------------------------------


def test_signed_certificate_chains_to_the_ca_and_keeps_the_subject(root: Issued) -> None:
    """The leaf is issued by the CA, for the CSR's key and subject, as a TLS client cert."""
    csr_pem, key = make_csr(common_name="CP-1", organization="ACME")
    csr = check_csr(csr_pem, identity="CP-1", organization="ACME")
    signed = sign_csr(csr, authority=authority_of(root), now=NOW, days=30, serial_number=4095)
    leaf = signed.certificate
    leaf.verify_directly_issued_by(root.certificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ACME"
    assert leaf.public_key() == key.public_key()
    assert signed.serial_hex == "FFF"  # SecWP §6.1: hex, no leading zeroes
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert signed.not_before == NOW - BACKDATE
    assert signed.not_after == NOW - BACKDATE + timedelta(days=30)
    assert signed.chain_pem == signed.leaf_pem
    assert x509.load_pem_x509_certificates(signed.chain_pem.encode()) == [leaf]


def test_validity_never_outlives_the_ca(tmp_path: Path) -> None:
    """A certificate that ended after its issuer would fail path validation."""
    short = make_ca(tmp_path, days=10)
    csr = check_csr(make_csr(common_name="CP-1")[0], identity="CP-1")
    signed = sign_csr(
        csr, authority=authority_of(short), now=datetime.now(UTC), days=365, serial_number=1
    )
    assert signed.not_after == short.certificate.not_valid_after_utc


def test_intermediate_goes_in_the_chain(root: Issued, tmp_path: Path) -> None:
    """The chain is the leaf, then the issuing intermediate; it verifies link by link."""
    sub = make_ca(tmp_path, common_name="Test Sub", parent=root, name="sub")
    authority = load_authority(sub.cert_file.read_bytes(), sub.key_file.read_bytes())
    csr = check_csr(make_csr(common_name="CP-1")[0], identity="CP-1")
    signed = sign_csr(csr, authority=authority, now=datetime.now(UTC), days=5, serial_number=2)
    leaf, intermediate = x509.load_pem_x509_certificates(signed.chain_pem.encode())
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root.certificate)


def test_rsa_ca_signs_with_pss(tmp_path: Path) -> None:
    """An RSA CA signs with RSA-PSS and SHA-256 (SecWP A00.FR.505/506)."""
    ca = make_ca(tmp_path, key_type="rsa")
    csr = check_csr(
        make_csr(common_name="CP-1", key=ec.generate_private_key(ec.SECP384R1()))[0],
        identity="CP-1",
    )
    signed = sign_csr(
        csr, authority=authority_of(ca), now=datetime.now(UTC), days=5, serial_number=3
    )
    assert isinstance(signed.certificate.signature_algorithm_parameters, padding.PSS)
    signed.certificate.verify_directly_issued_by(ca.certificate)
