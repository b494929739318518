"""The simulated charger's Security Whitepaper (edition 3) side: on a bench, then against csms."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from csms.config import SecuritySettings
from simulators import Charger
from simulators.station import SignedFirmwareStatus
from simulators.testing import SIM_EPOCH, Bench, make_station
from tests.pki import Issued, make_ca, make_client_cert, pem, sign_csr
from tests.support import MS, RunningCsms, running_csms, settings_for

WAIT = 15_000 * MS
# The bench's simulated clock starts at SIM_EPOCH, so certificates start a little before.
SIM_START = datetime.fromtimestamp(SIM_EPOCH, UTC) - timedelta(minutes=5)
CPO = "ACME Charging"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return make_ca(tmp_path_factory.mktemp("pki"), common_name="CPO Root", organization=CPO)


def answer_ok(bench: Bench, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    frame = bench.send(action, payload)
    assert frame[0] == 3, frame
    result: dict[str, Any] = frame[2]
    return result


def security_events(bench: Bench) -> list[str]:
    return [payload["type"] for payload in bench.sent("SecurityEventNotification")]


def new_csr(bench: Bench) -> x509.CertificateSigningRequest:
    """Trigger SignChargePointCertificate; return the CSR the station sent."""
    trigger = {"requestedMessage": "SignChargePointCertificate"}
    assert answer_ok(bench, "ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
    return x509.load_pem_x509_csr(bench.sent("SignCertificate")[-1]["csr"].encode())


# -- A02: a new key, a CSR, and the signed certificate -------------------------------------


def test_sign_charge_point_certificate_flow(root: Issued) -> None:
    """Trigger -> a fresh key and CSR (CN = identity, O = CpoName) -> CertificateSigned kept."""
    bench = Bench(make_station(config={"CpoName": CPO})).start()
    csr = new_csr(bench)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "BENCH-1"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
    leaf = sign_csr(root, bench.sent("SignCertificate")[-1]["csr"], not_before=SIM_START)
    assert not bench.station.new_certificate
    answer = answer_ok(bench, "CertificateSigned", {"certificateChain": pem(leaf)})
    assert answer == {"status": "Accepted"}
    assert bench.station.new_certificate  # the shell reconnects with it (A02)
    keys = bench.station.keys
    assert keys.certificate == leaf
    key_pem = keys.key_pem()
    assert key_pem is not None
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert key.public_key() == leaf.public_key()
    assert security_events(bench) == []
    assert bench.station.stats.protocol_errors == 0


@pytest.mark.parametrize("problem", ["other key", "expired", "untrusted issuer"])
def test_invalid_certificate_is_discarded_and_reported(
    root: Issued, tmp_path: Path, problem: str
) -> None:
    """A02.FR.06/07: a certificate for another key, out of date, or outside the CPO
    hierarchy is Rejected and reported as InvalidChargePointCertificate."""
    bench = Bench(make_station()).start()
    assert answer_ok(
        bench,
        "InstallCertificate",
        {"certificateType": "CentralSystemRootCertificate", "certificate": root.cert_pem},
    ) == {"status": "Accepted"}
    new_csr(bench)
    csr_pem = bench.sent("SignCertificate")[-1]["csr"]
    if problem == "other key":
        leaf = make_client_cert(root, tmp_path, common_name="BENCH-1", not_before=SIM_START)
        chain = leaf.cert_pem
    elif problem == "expired":
        chain = pem(sign_csr(root, csr_pem, not_before=SIM_START - timedelta(days=60)))
    else:
        stranger = make_ca(tmp_path, common_name="Stranger", name="stranger")
        chain = pem(sign_csr(stranger, csr_pem, not_before=SIM_START))
    answer = answer_ok(bench, "CertificateSigned", {"certificateChain": chain})
    assert answer == {"status": "Rejected"}
    assert bench.station.keys.certificate is None
    assert security_events(bench) == ["InvalidChargePointCertificate"]


# -- M03-M05: the trust store --------------------------------------------------------------


def test_install_list_and_delete_root_certificates(root: Issued, tmp_path: Path) -> None:
    """Installed roots are listed with their OCSP hash data, deleted by it, and not twice."""
    bench = Bench(make_station()).start()
    install = {"certificateType": "ManufacturerRootCertificate", "certificate": root.cert_pem}
    assert answer_ok(bench, "InstallCertificate", install) == {"status": "Accepted"}
    leaf = make_client_cert(root, tmp_path, common_name="not-a-ca")
    bad = {"certificateType": "ManufacturerRootCertificate", "certificate": leaf.cert_pem}
    assert answer_ok(bench, "InstallCertificate", bad) == {"status": "Rejected"}
    garbage = {"certificateType": "CentralSystemRootCertificate", "certificate": "garbage"}
    assert answer_ok(bench, "InstallCertificate", garbage) == {"status": "Rejected"}

    listed = answer_ok(
        bench, "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}
    )
    public = root.certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    expected = {
        "hashAlgorithm": "SHA256",
        # RFC 6960 CertID: the DER issuer name, and the issuer key's BIT STRING value.
        "issuerNameHash": hashlib.sha256(root.certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(public).hexdigest(),
        "serialNumber": format(root.certificate.serial_number, "X"),
    }
    assert listed == {"status": "Accepted", "certificateHashData": [expected]}
    none = answer_ok(
        bench, "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )
    assert none == {"status": "NotFound"}

    lowered = {**expected, "issuerNameHash": expected["issuerNameHash"].upper()}
    delete = {"certificateHashData": lowered}
    assert answer_ok(bench, "DeleteCertificate", delete) == {"status": "Accepted"}
    assert answer_ok(bench, "DeleteCertificate", delete) == {"status": "NotFound"}
    assert bench.station.certificates.installed == []


# -- N01: logs -----------------------------------------------------------------------------


def test_get_log_uploads_and_reports_its_status() -> None:
    """GetLog: Accepted with a file name, then Uploading and Uploaded with its requestId."""
    bench = Bench(make_station()).start()
    request = {
        "logType": "SecurityLog",
        "requestId": 41,
        "log": {"remoteLocation": "https://logs.example.com/up"},
    }
    answer = answer_ok(bench, "GetLog", request)
    assert answer["status"] == "Accepted"
    assert answer["filename"].startswith("SecurityLog-BENCH-1-")
    assert bench.sent("LogStatusNotification") == [{"status": "Uploading", "requestId": 41}]
    again = answer_ok(bench, "GetLog", {**request, "requestId": 42})
    assert again["status"] == "AcceptedCanceled"  # N01.FR.11
    bench.advance(6)
    assert bench.sent("LogStatusNotification")[-1] == {"status": "Uploaded", "requestId": 42}
    trigger = {"requestedMessage": "LogStatusNotification"}
    assert answer_ok(bench, "ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
    assert bench.sent("LogStatusNotification")[-1] == {"status": "Idle"}  # N01.FR.12


def test_get_log_to_nowhere_fails() -> None:
    """A remoteLocation that is no URL ends in UploadFailure."""
    bench = Bench(make_station()).start()
    request = {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "nowhere"}}
    answer_ok(bench, "GetLog", request)
    bench.advance(6)
    assert [p["status"] for p in bench.sent("LogStatusNotification")] == [
        "Uploading",
        "UploadFailure",
    ]


# -- L01: signed firmware ------------------------------------------------------------------


def signed_update(root: Issued, **firmware: Any) -> dict[str, Any]:
    return {
        "requestId": 5,
        "firmware": {
            "location": "https://fw.example.com/2.1.0.bin",
            "retrieveDateTime": "2026-01-01T00:00:00Z",
            "signingCertificate": root.cert_pem,
            "signature": "c2lnbmVkIGJ5IHRoZSBtYW51ZmFjdHVyZXI=",
            **firmware,
        },
    }


def test_signed_update_firmware_reports_every_step(root: Issued) -> None:
    """Accepted, then every state with the requestId, a FirmwareUpdated event, the new version."""
    bench = Bench(make_station()).start()
    assert answer_ok(bench, "SignedUpdateFirmware", signed_update(root)) == {"status": "Accepted"}
    bench.advance(60)
    sent = bench.sent("SignedFirmwareStatusNotification")
    assert [p["status"] for p in sent] == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "Installing",
        "Installed",
    ]
    assert {p["requestId"] for p in sent} == {5}  # L01.FR.10
    assert security_events(bench) == ["FirmwareUpdated"]
    assert bench.station.firmware == "2.1.0"
    trigger = {"requestedMessage": "FirmwareStatusNotification"}
    assert answer_ok(bench, "ExtendedTriggerMessage", trigger) == {"status": "Accepted"}
    assert bench.sent("SignedFirmwareStatusNotification")[-1] == {"status": "Idle"}  # L01.FR.28
    assert bench.station.stats.protocol_errors == 0


def test_signed_update_with_a_bad_certificate_or_signature(root: Issued) -> None:
    """An unreadable signing certificate is InvalidCertificate; a bad signature InvalidSignature,
    each with its security event (L01.FR.02/03)."""
    bench = Bench(make_station()).start()
    bad_certificate = signed_update(root, signingCertificate="not a certificate")
    answer = answer_ok(bench, "SignedUpdateFirmware", bad_certificate)
    assert answer == {"status": "InvalidCertificate"}
    answer = answer_ok(bench, "SignedUpdateFirmware", signed_update(root, signature="%%%"))
    assert answer == {"status": "Accepted"}
    bench.advance(60)
    statuses = [p["status"] for p in bench.sent("SignedFirmwareStatusNotification")]
    assert statuses == ["Downloading", "Downloaded", "InvalidSignature"]
    assert bench.station.signed_fw_status is SignedFirmwareStatus.INVALID_SIGNATURE
    assert security_events(bench) == [
        "InvalidFirmwareSigningCertificate",
        "InvalidFirmwareSignature",
    ]


# -- A04: security events ------------------------------------------------------------------


def test_startup_security_event_is_opt_in() -> None:
    """StartupOfTheDevice after boot only with SimSecurityEventOnBoot = true."""
    quiet = Bench(make_station()).start()
    assert security_events(quiet) == []
    loud = Bench(make_station(config={"SimSecurityEventOnBoot": True})).start()
    (event,) = loud.sent("SecurityEventNotification")
    assert event == {"type": "StartupOfTheDevice", "timestamp": "2026-01-01T00:00:00.000Z"}


# -- against the real csms -----------------------------------------------------------------


@pytest.fixture
async def signing_csms(database_url: str, root: Issued, tmp_path: Path) -> Any:
    """csms signing CSRs with the CPO root, O = the CPO."""
    security = SecuritySettings(
        ca_file=str(root.cert_file), ca_key_file=str(root.key_file), organization=CPO
    )
    async with running_csms(replace(settings_for(database_url), security=security)) as running:
        yield running


async def test_simulator_gets_a_certificate_from_csms(
    signing_csms: RunningCsms, root: Issued
) -> None:
    """ExtendedTriggerMessage over the API -> SignCertificate -> csms signs -> the sim keeps it."""
    csms = signing_csms
    async with Charger(url=csms.ocpp_url, identity="SIM-PKI", config={"CpoName": CPO}) as cp:
        assert (await cp.boot())["status"] == "Accepted"
        async with httpx.AsyncClient(
            base_url=csms.api_url,
            headers={"Authorization": f"Bearer {csms.api_token}"},
            timeout=WAIT,
        ) as api:
            response = await api.post(
                "/charge-points/SIM-PKI/commands/ExtendedTriggerMessage",
                json={"requestedMessage": "SignChargePointCertificate"},
            )
            assert response.json()["response"] == {"status": "Accepted"}
            signed = await cp.next_incoming("CertificateSigned", timeout=WAIT)
        assert signed.response == {"status": "Accepted"}
        certificate = cp.core.keys.certificate
        assert certificate is not None
        certificate.verify_directly_issued_by(root.certificate)
        assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "SIM-PKI"
        assert cp.core.stats.protocol_errors == 0
