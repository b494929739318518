"""The charger's side of the OCPP 1.6 Security Whitepaper (edition 3): keys, CSRs,
certificates, and the certificate and security-event actions.

:class:`CertificateStore` and :class:`ChargerKeys` are pure and synchronous: PEM text and
times in, PEM text, hash data and verdicts out. :class:`SecurityActions` puts them behind
the central system's commands and decides when to send what. (Signed firmware and log
uploads are in :mod:`simulators.firmware`.)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from .ocppj import CallError
from .services import Services

__all__ = [
    "CertificateStore",
    "CertificateUse",
    "ChargerKeys",
    "InstalledCertificate",
    "SecurityActions",
    "SecurityServices",
    "is_base64_signature",
    "is_pem_certificate",
]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}
MAX_CHAIN_DEPTH = 5


class CertificateUse(StrEnum):
    """CertificateUseEnumType (SecWP §6.4)."""

    CENTRAL_SYSTEM_ROOT = "CentralSystemRootCertificate"
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"


@dataclass(frozen=True, slots=True)
class InstalledCertificate:
    """A CA certificate in the charger's trust store."""

    use: CertificateUse
    certificate: x509.Certificate

    def hash_data(
        self, issuer: x509.Certificate | None = None, algorithm: str = "SHA256"
    ) -> dict[str, str]:
        """CertificateHashDataType (SecWP §6.1): the OCSP CertID fields (RFC 6960).

        ``issuer`` is the certificate that signed this one; a root is its own issuer.
        """
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(self.certificate, issuer or self.certificate, _HASHES[algorithm])
            .build()
        )
        return {
            "hashAlgorithm": algorithm,
            "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(),
            # SecWP §6.1: hex without leading zeroes.
            "serialNumber": format(self.certificate.serial_number, "X"),
        }


class CertificateStore:
    """Installed CentralSystem and Manufacturer root certificates (SecWP M03-M05)."""

    def __init__(self, max_length: int = 10) -> None:
        self.max_length = max_length
        self.installed: list[InstalledCertificate] = []

    def install(self, use: CertificateUse, pem: str) -> str:
        """InstallCertificate.conf status: Accepted, or Rejected (M05.FR.03/06)."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return "Rejected"
        if not _is_ca(certificate):
            return "Rejected"
        if any(i.certificate == certificate and i.use is use for i in self.installed):
            return "Accepted"
        if len(self.installed) >= self.max_length:
            return "Rejected"  # M05.FR.03: CertificateStoreMaxLength reached
        self.installed.append(InstalledCertificate(use, certificate))
        return "Accepted"

    def delete(self, hash_data: dict[str, Any]) -> str:
        """DeleteCertificate.conf status: Accepted, or NotFound (M04.FR.02/04).

        Compared with the hashAlgorithm the central system names (M04.FR.07).
        """
        wanted = _normal(hash_data)
        for item in self.installed:
            if _normal(self._hash(item, hash_data["hashAlgorithm"])) == wanted:
                self.installed.remove(item)
                return "Accepted"
        return "NotFound"

    def ids(self, use: CertificateUse) -> dict[str, Any]:
        """GetInstalledCertificateIds.conf: NotFound, or Accepted with the hash data (M03)."""
        found = [self._hash(item) for item in self.installed if item.use is use]
        if not found:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashData": found}

    def roots(self, use: CertificateUse) -> list[x509.Certificate]:
        return [item.certificate for item in self.installed if item.use is use]

    def _hash(self, item: InstalledCertificate, algorithm: str = "SHA256") -> dict[str, str]:
        issuer = next(
            (
                other.certificate
                for other in self.installed
                if other.certificate.subject == item.certificate.issuer
            ),
            None,
        )
        return item.hash_data(issuer, algorithm)


def _normal(hash_data: dict[str, Any]) -> tuple[str, ...]:
    # CiStrings: case-insensitive; serials without leading zeroes.
    return (
        str(hash_data["hashAlgorithm"]).upper(),
        str(hash_data["issuerNameHash"]).lower(),
        str(hash_data["issuerKeyHash"]).lower(),
        str(hash_data["serialNumber"]).upper().lstrip("0") or "0",
    )


class ChargerKeys:
    """The charge point's own key pair and certificate (SecWP A02/A03).

    The private key never leaves this object (A02.FR.05): only the CSR goes out.
    """

    def __init__(self) -> None:
        self._pending: ec.EllipticCurvePrivateKey | None = None
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.chain_pem: str | None = None  # the installed certificate, with its sub-CAs

    @property
    def certificate(self) -> x509.Certificate | None:
        if self.chain_pem is None:
            return None
        return x509.load_pem_x509_certificates(self.chain_pem.encode())[0]

    def new_csr(self, *, common_name: str, organization: str = "") -> str:
        """A new key pair (A02.FR.02) and its PEM CSR (A02.FR.03); O = CpoName (A02.FR.13)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attributes))
            .sign(key, hashes.SHA256())
        )
        self._pending = key
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def accept(
        self,
        chain_pem: str,
        *,
        now: datetime,
        common_name: str,
        roots: list[x509.Certificate],
    ) -> str | None:
        """Install a CertificateSigned chain; the reason it is invalid, or None (A02.FR.06).

        Checked: it is for the key of our last CSR, for our CN, valid at ``now``, and,
        when CentralSystemRootCertificates are installed, it chains to one of them (the CPO
        hierarchy). With no root installed there is nothing to check the chain against.
        """
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError:
            return "not a pem certificate chain"
        leaf = chain[0]
        if self._pending is None:
            return "no certificate signing request outstanding"
        if _spki(leaf.public_key()) != _spki(self._pending.public_key()):
            return "certificate is not for the key of the last csr"
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [name.value for name in names] != [common_name]:
            return "certificate common name is not ours"
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return "certificate is not valid now"
        if roots and not _chains_to(leaf, chain[1:], roots):
            return "certificate does not chain to an installed central system root"
        self.key, self._pending = self._pending, None
        self.chain_pem = chain_pem
        return None

    def key_pem(self) -> str | None:
        """The private key of the installed certificate, for the TLS client (never sent)."""
        if self.key is None:
            return None
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


def _chains_to(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: list[x509.Certificate]
) -> bool:
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        for root in roots:
            if _issued_by(current, root):
                return True
        parent = next((c for c in intermediates if _issued_by(current, c)), None)
        if parent is None:
            return False
        current = parent
    return False


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def is_pem_certificate(text: str) -> bool:
    """Whether ``text`` is a readable PEM X.509 certificate (SignedUpdateFirmware, L01.FR.23)."""
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        return False
    return True


def is_base64_signature(text: str) -> bool:
    """Whether a firmware signature is non-empty base64 (what the simulator can check)."""
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


# ---------------------------------------------------------------- the charger's actions


class SecurityServices(Services, Protocol):
    """What the security actions need besides the common services."""

    def use_new_certificate(self) -> None:
        """Present the charger's new certificate from now on (reconnecting to do so)."""
        ...


class SecurityActions:
    """Certificates and security events of one charger (SecWP A02-A04, M03-M05)."""

    def __init__(
        self,
        services: SecurityServices,
        *,
        keys: ChargerKeys,
        certificates: CertificateStore,
    ) -> None:
        self._services = services
        self.keys = keys
        self.certificates = certificates

    def send_event(self, kind: str, now: float, tech_info: str = "") -> None:
        """SecurityEventNotification, queued with guaranteed delivery (SecWP A04.FR.02)."""
        services = self._services
        payload: dict[str, Any] = {"type": kind, "timestamp": services.clock.stamp(now)}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        services.send_call("SecurityEventNotification", payload, transactional=True)

    def request_certificate(self, now: float) -> None:
        """SignCertificate with a CSR for a new key pair (SecWP A02.FR.02/03)."""
        services = self._services
        csr = self.keys.new_csr(
            common_name=services.identity, organization=services.config.get("CpoName")
        )

        def answered(result: dict[str, Any] | None, error: CallError | None) -> None:
            if result is None or result.get("status") != "Accepted":
                services.stats.note(services.identity, "SignCertificate was not accepted")

        services.send_call("SignCertificate", {"csr": csr}, answered)

    # -- handlers

    def certificate_signed(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """CertificateSigned: keep the certificate if it is ours and valid (A02.FR.06)."""
        services = self._services
        chain = payload["certificateChain"]
        if len(chain) > services.config.get_int("CertificateSignedMaxChainSize"):
            problem: str | None = "certificate chain longer than CertificateSignedMaxChainSize"
        else:
            problem = self.keys.accept(
                chain,
                now=datetime.fromtimestamp(services.clock.wall(now), UTC),
                common_name=services.identity,
                roots=self.certificates.roots(CertificateUse.CENTRAL_SYSTEM_ROOT),
            )
        if problem is not None:
            # SecWP A02.FR.07: discard it and report InvalidChargePointCertificate.
            services.stats.note(services.identity, f"CertificateSigned rejected: {problem}")
            services.after_reply(
                lambda later: self.send_event("InvalidChargePointCertificate", later, problem)
            )
            return {"status": "Rejected"}
        # SecWP A02: the charger then uses its new certificate; it reconnects to present it
        # (after this answer is out).
        services.after_reply(lambda _later: services.use_new_certificate())
        return {"status": "Accepted"}

    def install_certificate(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """InstallCertificate (M05)."""
        use = CertificateUse(payload["certificateType"])
        return {"status": self.certificates.install(use, payload["certificate"])}

    def delete_certificate(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """DeleteCertificate (M04)."""
        return {"status": self.certificates.delete(payload["certificateHashData"])}

    def get_installed_certificate_ids(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetInstalledCertificateIds (M03)."""
        return self.certificates.ids(CertificateUse(payload["certificateType"]))
