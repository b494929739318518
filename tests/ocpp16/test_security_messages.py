"""The Security Whitepaper (edition 3) messages end to end: real csms, real frames, real MQTT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import NameOID
from sqlmodel import col, select

from csms.config import SecuritySettings
from csms.core.charger import SecurityEventFacts
from csms.core.security_events import SecurityEventSource
from csms.events import build
from csms.store import outbox, security
from csms.store.tables import ChargePoint, ChargerMessage
from tests.pki import Issued, load_chain, make_ca, make_csr
from tests.strict_charger import StrictCharger, strict_charger
from tests.support import MS, RunningCsms, mqtt_of, running_csms, settings_for, subscribed

CPO = "ACME Charging"


@pytest.fixture
def ca(tmp_path: Path) -> Issued:
    """A throwaway CPO root CA."""
    return make_ca(tmp_path / "pki", common_name="ACME Root CA", organization=CPO)


def _signing(ca: Issued, **overrides: Any) -> SecuritySettings:
    return SecuritySettings(
        ca_file=str(ca.cert_file),
        ca_key_file=str(ca.key_file),
        certificate_days=30,
        organization=CPO,
        **overrides,
    )


@pytest.fixture
async def signing_csms(database_url: str, ca: Issued) -> AsyncIterator[RunningCsms]:
    """A csms that signs CSRs with the throwaway CA, CN = identity and O = the CPO."""
    settings = replace(settings_for(database_url), security=_signing(ca))
    async with running_csms(settings) as running:
        yield running


async def received(charger: StrictCharger, action: str) -> dict[str, Any]:
    """Wait until the charger has received a CALL of `action`; return its payload."""
    async with asyncio.timeout(10_000 * MS):
        while True:
            for name, payload in charger.received:
                if name == action:
                    return payload
            charger.arrived.clear()
            await charger.arrived.wait()


async def issued(csms: RunningCsms, charge_point_id: str) -> list[Any]:
    async with csms.app.database.sessions() as session:
        return list(
            await security.list_issued_certificates(session, charge_point_id=charge_point_id)
        )


async def nothing_in_flight(csms: RunningCsms) -> None:
    """Wait for every CertificateSigned csms has started to send (if it can sign at all)."""
    if csms.app.services.certificates is not None:
        async with asyncio.timeout(10_000 * MS):
            await csms.app.services.certificates.wait_idle()


# -- SecurityEventNotification -------------------------------------------------------------


@pytest.mark.postgres
async def test_security_event_is_stored_and_published(csms: RunningCsms) -> None:
    """SecurityEventNotification: answered {}, stored with source charger, security.event out."""
    mqtt = mqtt_of(csms)
    notification = {
        "type": "TamperDetectionActivated",
        "timestamp": "2026-03-01T10:00:00+01:00",
        "techInfo": "cover opened",
    }
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with csms.charger("CP-SEC") as cp:
            answer = await cp.call("SecurityEventNotification", notification)
        (event,) = await events.until(1, of_type="security.event")
    assert answer == {}
    assert event["source"] == "/charge-points/CP-SEC"
    assert event["subject"] == "CP-SEC"
    assert event["time"] == "2026-03-01T09:00:00.000Z"  # the charger's time, in UTC
    assert event["data"] == {
        "type": "TamperDetectionActivated",
        "timestamp": "2026-03-01T09:00:00.000Z",
        "techInfo": "cover opened",
        "source": "charger",
    }
    async with csms.app.database.sessions() as session:
        (row,) = await security.list_security_events(session, charge_point_id="CP-SEC")
    assert (row.source, row.type, row.tech_info, row.remote_address) == (
        "charger",
        "TamperDetectionActivated",
        "cover opened",
        None,
    )
    assert row.timestamp == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def test_security_event_without_tech_info_and_a_bad_one(csms: RunningCsms) -> None:
    """techInfo is optional; a type longer than string[50] is a TypeConstraintViolation."""
    async with csms.charger("CP-SEC2") as cp:
        ok = await cp.call(
            "SecurityEventNotification",
            {"type": "StartupOfTheDevice", "timestamp": "2026-03-01T10:00:00Z"},
        )
        frame = await cp.exchange(
            [2, "bad", "SecurityEventNotification", {"type": "x" * 51, "timestamp": "now"}]
        )
    assert ok == {}
    assert frame[:3] == [4, "bad", "TypeConstraintViolation"]
    async with csms.app.database.sessions() as session:
        rows = await security.list_security_events(session, charge_point_id="CP-SEC2")
    assert [(row.type, row.tech_info) for row in rows] == [("StartupOfTheDevice", None)]


async def test_csms_side_security_event_helper(csms: RunningCsms) -> None:
    """The builder and store helper for csms's own events: one write, row and event together."""
    mqtt = mqtt_of(csms)
    now = datetime.now(UTC)
    facts = SecurityEventFacts(
        charge_point_id="CP-GHOST",
        kind="FailedToAuthenticationAtCentralSystem",
        timestamp=now,
        source=SecurityEventSource.CSMS,
        tech_info="wrong password",
        remote_address="192.0.2.7",
    )
    event = build.security_event(facts)
    write = outbox.with_events(security.security_event(facts, now=now), [event], now=now)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        await csms.app.database.writer.submit_bulk(write)
        (published,) = await events.until(1, of_type="security.event")
    assert published["id"] == str(event.id)
    assert published["data"] == {
        "type": "FailedToAuthenticationAtCentralSystem",
        "timestamp": published["time"],
        "techInfo": "wrong password",
        "source": "csms",
        "remoteAddress": "192.0.2.7",
    }
    async with csms.app.database.sessions() as session:
        (row,) = await security.list_security_events(session, charge_point_id="CP-GHOST")
    assert (row.source, row.remote_address) == ("csms", "192.0.2.7")


# -- SignCertificate -> CertificateSigned (A02/A03) ----------------------------------------


@pytest.mark.postgres
async def test_sign_certificate_delivers_a_certificate_of_the_ca(
    signing_csms: RunningCsms, ca: Issued
) -> None:
    """Accepted, then CertificateSigned with a leaf the CA issued for this CSR's key and CN."""
    csms = signing_csms
    mqtt = mqtt_of(csms)
    csr, key = make_csr(common_name="CP-SIGN", organization=CPO)
    async with (
        subscribed(mqtt.url, mqtt.topic_prefix) as events,
        strict_charger(f"{csms.ocpp_url}/CP-SIGN") as charger,
    ):
        charger.answers["CertificateSigned"] = {"status": "Accepted"}
        answer = await charger.call("SignCertificate", {"csr": csr})
        delivered = await received(charger, "CertificateSigned")
        (completed,) = await events.until(1, of_type="command.completed")
    assert answer == {"status": "Accepted"}
    assert charger.violations == []
    (leaf,) = load_chain(delivered["certificateChain"])  # a root CA: the leaf alone
    leaf.verify_directly_issued_by(ca.certificate)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-SIGN"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
    assert leaf.public_key() == key.public_key()
    assert completed["data"]["action"] == "CertificateSigned"
    assert completed["data"]["response"] == {"status": "Accepted"}
    (row,) = await issued(csms, "CP-SIGN")
    assert row.serial_number == format(leaf.serial_number, "X")
    assert row.subject == f"O={CPO},CN=CP-SIGN"
    assert load_chain(row.pem) == [leaf]
    async with csms.api() as api:
        records = (await api.get("/charge-points/CP-SIGN/commands")).json()["items"]
    assert [(r["action"], r["outcome"], r["requestedBy"]) for r in records] == [
        ("CertificateSigned", "ok", "csms")
    ]


@pytest.mark.parametrize(
    ("common_name", "organization", "csr_text"),
    [
        ("SOMEONE-ELSE", CPO, None),  # CN is not the identity (A00.FR.405)
        ("CP-NO", "Other CPO", None),  # O is not the CPO (A00.FR.404)
        ("CP-NO", None, None),  # no O at all (A02.FR.13)
        ("CP-NO", CPO, "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n"),
    ],
)
async def test_unacceptable_csr_is_rejected_and_nothing_is_sent(
    signing_csms: RunningCsms, common_name: str, organization: str | None, csr_text: str | None
) -> None:
    """A CSR of another charger or CPO, or garbage: Rejected, no certificate, no CALL."""
    csms = signing_csms
    csr = csr_text or make_csr(common_name=common_name, organization=organization)[0]
    async with strict_charger(f"{csms.ocpp_url}/CP-NO") as charger:
        answer = await charger.call("SignCertificate", {"csr": csr})
        await nothing_in_flight(csms)
    assert answer == {"status": "Rejected"}
    assert charger.received == []
    assert await issued(csms, "CP-NO") == []


@pytest.mark.postgres
async def test_rejected_csr_is_a_published_security_event(signing_csms: RunningCsms) -> None:
    """A CSR csms refuses is kept and published as security.event (type CsrRejected) with
    the reason, not only logged."""
    csms = signing_csms
    mqtt = mqtt_of(csms)
    csr = make_csr(common_name="SOMEONE-ELSE", organization=CPO)[0]
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with strict_charger(f"{csms.ocpp_url}/CP-CSR") as charger:
            assert await charger.call("SignCertificate", {"csr": csr}) == {"status": "Rejected"}
        (event,) = await events.until(1, of_type="security.event")
    assert event["subject"] == "CP-CSR"
    assert event["data"]["type"] == "CsrRejected"
    assert event["data"]["source"] == "csms"
    assert event["data"]["techInfo"].startswith("csr rejected: ")
    assert "CN" in event["data"]["techInfo"]
    async with csms.app.database.sessions() as db:
        (row,) = await security.list_security_events(db, charge_point_id="CP-CSR")
    assert (row.type, row.source) == ("CsrRejected", "csms")


async def test_without_a_ca_key_every_csr_is_rejected(csms: RunningCsms) -> None:
    """No [security] ca_key_file: csms cannot process a CSR, so Rejected (A02.FR.12)."""
    assert csms.app.services.certificates is None
    async with strict_charger(f"{csms.ocpp_url}/CP-NOCA") as charger:
        answer = await charger.call("SignCertificate", {"csr": make_csr(common_name="CP-NOCA")[0]})
    assert answer == {"status": "Rejected"}
    assert charger.received == []
    assert await issued(csms, "CP-NOCA") == []


@pytest.fixture
async def serial_csms(database_url: str, ca: Issued) -> AsyncIterator[RunningCsms]:
    """A csms whose charger certificates carry the serial number as CN (A00.FR.405)."""
    settings = replace(settings_for(database_url), security=_signing(ca, client_cn="serial"))
    async with running_csms(settings) as running:
        yield running


async def test_serial_rule_signs_the_booted_serial_only(
    serial_csms: RunningCsms, ca: Issued
) -> None:
    """With client_cn = serial, a CSR for the BootNotification serial is signed; the id is not."""
    csms = serial_csms
    async with csms.charger("CP-SER", boot=False) as cp:
        await cp.call(
            "BootNotification",
            {
                "chargePointVendor": "V",
                "chargePointModel": "M",
                "chargeBoxSerialNumber": "SN-000123",
            },
        )
        by_identity = await cp.call(
            "SignCertificate", {"csr": make_csr(common_name="CP-SER", organization=CPO)[0]}
        )
        by_serial = await cp.call(
            "SignCertificate", {"csr": make_csr(common_name="SN-000123", organization=CPO)[0]}
        )
        frame = await cp.recv_frame()
        await cp.send_raw(f'[3, "{frame[1]}", {{"status": "Accepted"}}]')
        await nothing_in_flight(csms)
    assert (by_identity, by_serial) == ({"status": "Rejected"}, {"status": "Accepted"})
    assert frame[2] == "CertificateSigned"
    (leaf,) = load_chain(frame[3]["certificateChain"])
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "SN-000123"
    leaf.verify_directly_issued_by(ca.certificate)


# -- Central System -> charger actions of the extension ------------------------------------

HASH_DATA = {
    "hashAlgorithm": "SHA256",
    "issuerNameHash": "a" * 64,
    "issuerKeyHash": "b" * 64,
    "serialNumber": "FFF",
}

# A valid request, a valid answer, and a payload the 1.6 schema refuses, per action.
SECURITY_ACTIONS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "CertificateSigned": (
        {"certificateChain": "-----BEGIN CERTIFICATE-----\n..."},
        {"status": "Accepted"},
        {"certificateChain": "x" * 10001},
    ),
    "InstallCertificate": (
        {"certificateType": "CentralSystemRootCertificate", "certificate": "-----BEGIN..."},
        {"status": "Accepted"},
        {"certificateType": "ChargePointCertificate", "certificate": "x"},
    ),
    "DeleteCertificate": (
        {"certificateHashData": HASH_DATA},
        {"status": "Accepted"},
        {"certificateHashData": {**HASH_DATA, "hashAlgorithm": "MD5"}},
    ),
    "GetInstalledCertificateIds": (
        {"certificateType": "ManufacturerRootCertificate"},
        {"status": "Accepted", "certificateHashData": [HASH_DATA]},
        {},
    ),
    "ExtendedTriggerMessage": (
        {"requestedMessage": "SignChargePointCertificate"},
        {"status": "Accepted"},
        {"requestedMessage": "DiagnosticsStatusNotification"},
    ),
    "GetLog": (
        {
            "logType": "SecurityLog",
            "requestId": 7,
            "log": {"remoteLocation": "https://logs.example.com/upload"},
        },
        {"status": "Accepted", "filename": "security.log"},
        {"logType": "SecurityLog", "requestId": 7},
    ),
    "SignedUpdateFirmware": (
        {
            "requestId": 9,
            "firmware": {
                "location": "https://fw.example.com/2.0.bin",
                "retrieveDateTime": "2026-03-01T10:00:00Z",
                "signingCertificate": "-----BEGIN CERTIFICATE-----\n...",
                "signature": "c2lnbmF0dXJl",
            },
        },
        {"status": "Accepted"},
        {"requestId": "9", "firmware": {}},
    ),
}


@pytest.mark.postgres
async def test_every_security_action_goes_through_the_command_api(csms: RunningCsms) -> None:
    """Each extension action: sent schema-valid to the charger, answered 200, recorded."""
    async with strict_charger(f"{csms.ocpp_url}/CP-EXT") as charger, csms.api() as api:
        for action, (_, answer, _) in SECURITY_ACTIONS.items():
            charger.answers[action] = answer
        for action, (request, answer, _) in SECURITY_ACTIONS.items():
            response = await api.post(f"/charge-points/CP-EXT/commands/{action}", json=request)
            assert response.status_code == 200, (action, response.text)
            assert response.json() == {
                "action": action,
                "chargePointId": "CP-EXT",
                "response": answer,
            }
        records = (await api.get("/charge-points/CP-EXT/commands")).json()
    assert charger.received == [(action, item[0]) for action, item in SECURITY_ACTIONS.items()]
    assert charger.violations == []
    assert records["total"] == len(SECURITY_ACTIONS)
    assert {item["outcome"] for item in records["items"]} == {"ok"}


@pytest.mark.parametrize("action", list(SECURITY_ACTIONS))
async def test_security_action_off_schema_is_422_and_not_sent(
    csms: RunningCsms, action: str
) -> None:
    """A payload the extension's 1.6 schema refuses is a 422; nothing reaches the charger."""
    bad = SECURITY_ACTIONS[action][2]
    async with strict_charger(f"{csms.ocpp_url}/CP-BAD") as charger, csms.api() as api:
        response = await api.post(f"/charge-points/CP-BAD/commands/{action}", json=bad)
        follow_up = await api.post("/charge-points/CP-BAD/commands/ClearCache", json={})
    assert response.status_code == 422, response.text
    assert f"{action}.req" in response.json()["detail"]
    assert follow_up.status_code == 200
    assert [name for name, _ in charger.received] == ["ClearCache"]


# -- LogStatusNotification / SignedFirmwareStatusNotification ------------------------------


@pytest.mark.postgres
async def test_log_and_signed_firmware_status_are_kept(csms: RunningCsms) -> None:
    """Both are answered {}, kept as they came, and their last status is on the charge point."""
    async with csms.charger("CP-LOG") as cp:
        answers = [
            await cp.call("LogStatusNotification", {"status": "Uploading", "requestId": 7}),
            await cp.call("LogStatusNotification", {"status": "Uploaded", "requestId": 7}),
            await cp.call(
                "SignedFirmwareStatusNotification", {"status": "Downloading", "requestId": 9}
            ),
            await cp.call(
                "SignedFirmwareStatusNotification", {"status": "InvalidSignature", "requestId": 9}
            ),
        ]
    assert answers == [{}, {}, {}, {}]
    async with csms.app.database.sessions() as session:
        charge_point = await session.get(ChargePoint, "CP-LOG")
        messages = (
            await session.execute(
                select(ChargerMessage)
                .where(col(ChargerMessage.charge_point_id) == "CP-LOG")
                .order_by(col(ChargerMessage.id))
            )
        ).scalars()
        kept = [(m.action, m.payload) for m in messages]
    assert charge_point is not None
    assert (charge_point.log_status, charge_point.firmware_status) == (
        "Uploaded",
        "InvalidSignature",
    )
    assert kept == [
        ("LogStatusNotification", {"status": "Uploading", "requestId": 7}),
        ("LogStatusNotification", {"status": "Uploaded", "requestId": 7}),
        ("SignedFirmwareStatusNotification", {"status": "Downloading", "requestId": 9}),
        ("SignedFirmwareStatusNotification", {"status": "InvalidSignature", "requestId": 9}),
    ]
