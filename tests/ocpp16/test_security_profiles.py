"""Security profiles 1-3 over real sockets and real TLS: passwords, CN binding, rate limit.

Certificates come from a throwaway CA made per test module (tests/pki.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from csms.config import SecuritySettings
from csms.store import chargers, security
from simulators.charger import Charger, make_ssl_context
from tests import pki
from tests.strict_charger import StrictCharger
from tests.support import (
    MS,
    RawCharger,
    RunningCsms,
    free_port,
    new_identity,
    running_csms,
    settings_for,
    subscribed,
)

KEY_HEX = "00112233445566778899aabbccddeeff01234567"  # a 20-byte AuthorizationKey
KEY = bytes.fromhex(KEY_HEX)
TEXT_PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Pki:
    ca: pki.Issued
    server: pki.Issued
    other_ca: pki.Issued
    directory: Path

    def client(self, common_name: str, **kwargs: Any) -> pki.Issued:
        return pki.make_client_cert(self.ca, self.directory, common_name=common_name, **kwargs)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(directory, organization="ACME CPO")
    other = pki.make_ca(directory, name="other-ca", common_name="someone else's CA")
    return Pki(
        ca=ca, server=pki.make_server_cert(ca, directory), other_ca=other, directory=directory
    )


def security_settings(certificates: Pki, **overrides: Any) -> SecuritySettings:
    values: dict[str, Any] = {
        "tls_host": "127.0.0.1",
        "tls_port": free_port(),
        "cert_file": str(certificates.server.cert_file),
        "key_file": str(certificates.server.key_file),
        "ca_file": str(certificates.ca.cert_file),
        "max_failed_auth": 50,
    }
    return SecuritySettings(**(values | overrides))


@dataclass
class SecureCsms:
    running: RunningCsms

    @property
    def plain_url(self) -> str:
        return self.running.ocpp_url

    @property
    def tls_url(self) -> str:
        return f"wss://127.0.0.1:{self.running.app.ocpp_tls_port}/ocpp"

    async def register(self, identity: str, **body: Any) -> None:
        async with self.running.api() as api:
            response = await api.put(f"/charge-points/{identity}", json=body)
        assert response.status_code in (200, 201), response.text

    async def charge_point(self, identity: str) -> dict[str, Any]:
        async with self.running.api() as api:
            response = await api.get(f"/charge-points/{identity}")
        result: dict[str, Any] = response.json()
        return result


@asynccontextmanager
async def secure_csms(
    database_url: str, certificates: Pki, **security: Any
) -> AsyncIterator[SecureCsms]:
    settings = settings_for(database_url, security=security_settings(certificates, **security))
    async with running_csms(settings) as running:
        yield SecureCsms(running)


@pytest.fixture
async def csms_tls(database_url: str, certificates: Pki) -> AsyncIterator[SecureCsms]:
    async with secure_csms(database_url, certificates) as csms:
        yield csms


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def client_tls(certificates: Pki, client: pki.Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.ca.cert_file))
    if client is not None:
        context.load_cert_chain(str(client.cert_file), str(client.key_file))
    return context


@asynccontextmanager
async def session(
    url: str,
    *,
    authorization: str | None = None,
    tls: ssl.SSLContext | None = None,
    boot: bool = True,
) -> AsyncIterator[RawCharger]:
    headers = {"Authorization": authorization} if authorization else None
    websocket: ClientConnection
    async with connect(
        url,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=tls,
        open_timeout=10_000 * MS,
    ) as websocket:
        charger = RawCharger(websocket)
        if boot:
            await charger.boot()
        yield charger


async def refusal(url: str, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and body of a refused upgrade (fails if the upgrade succeeds)."""
    with pytest.raises(InvalidStatus) as caught:
        async with session(url, boot=False, **kwargs):
            pass
    response = caught.value.response
    return response.status_code, response.body.decode()


async def connects(url: str, **kwargs: Any) -> bool:
    async with session(url, **kwargs) as charger:
        answer = await charger.call("Heartbeat", {})
    return "currentTime" in answer


# -- profile 1: HTTP Basic on the upgrade (docs/security.md, "Passwords") -------------------


@pytest.mark.postgres
async def test_profile_1_needs_the_right_basic_credentials(csms_tls: SecureCsms) -> None:
    """Missing, wrong, or another identity's credentials get 401 before the upgrade."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    url = f"{csms_tls.plain_url}/{identity}"
    status, body = await refusal(url)
    assert status == 401
    assert "security profile 1 needs a password" in body
    assert (await refusal(url, authorization=basic(identity, b"x" * 20)))[0] == 401
    assert (await refusal(url, authorization=basic("OTHER-CP", KEY)))[0] == 401
    assert (await refusal(url, authorization="Basic !!notbase64"))[0] == 401
    assert (await refusal(url, authorization="Bearer abc"))[0] == 401
    assert await connects(url, authorization=basic(identity, KEY))
    view = await csms_tls.charge_point(identity)
    assert view["securityProfile"] == 1
    assert view["passwordSet"] is True
    assert "password" not in view
    assert KEY_HEX not in orjson.dumps(view).decode()


async def test_refusal_challenges_for_basic(csms_tls: SecureCsms) -> None:
    """A profile-1 charger without credentials gets 401 with a WWW-Authenticate: Basic challenge."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=TEXT_PASSWORD)
    with pytest.raises(InvalidStatus) as caught:
        async with session(f"{csms_tls.plain_url}/{identity}", boot=False):
            pass
    assert caught.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_text_password_is_compared_as_its_bytes(csms_tls: SecureCsms) -> None:
    """A text password must match byte for byte: the same text connects, another case gets 401."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=TEXT_PASSWORD)
    url = f"{csms_tls.plain_url}/{identity}"
    assert await connects(url, authorization=basic(identity, TEXT_PASSWORD.encode()))
    assert (await refusal(url, authorization=basic(identity, TEXT_PASSWORD.upper().encode())))[
        0
    ] == 401


async def test_hex_key_means_raw_bytes_and_hex_text_only_in_compat_mode(
    csms_tls: SecureCsms,
) -> None:
    """A 40-hex-digit key is sent as its 20 raw bytes; its hex text only when allowed."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    url = f"{csms_tls.plain_url}/{identity}"
    assert await connects(url, authorization=basic(identity, KEY))
    assert (await refusal(url, authorization=basic(identity, KEY_HEX.encode())))[0] == 401
    await csms_tls.register(identity, passwordHexCompat=True)
    assert await connects(url, authorization=basic(identity, KEY_HEX.encode()))
    assert await connects(url, authorization=basic(identity, KEY))
    assert (await csms_tls.charge_point(identity))["passwordHexCompat"] is True


@pytest.mark.parametrize(
    ("password", "detail"),
    [
        ("0011223344556677889900aabbccdd", None),  # a 15-byte key (30 hex digits)
        ("short-password", None),
        ("x" * 41, None),
        ("has space in the password", "spaces"),
    ],
)
async def test_short_keys_are_refused_at_provisioning(
    csms_tls: SecureCsms, password: str, detail: str | None
) -> None:
    """A key under 16 bytes never gets stored."""
    async with csms_tls.running.api() as api:
        response = await api.put(
            "/charge-points/CP-SHORT", json={"securityProfile": 1, "password": password}
        )
    if len(password) == 30:
        # 30 hex digits is a text password of 30 characters, which is allowed; the charger
        # then sends those 30 characters, never a 15-byte key.
        assert response.status_code == 201
        return
    assert response.status_code == 422, response.text
    assert password not in response.text  # never echoed back
    if detail:
        assert detail in response.json()["detail"]


async def test_profile_1_without_a_password_is_refused_by_the_api(csms_tls: SecureCsms) -> None:
    """A password profile (here 2) registered without a password is a 422 saying it needs one."""
    async with csms_tls.running.api() as api:
        response = await api.put("/charge-points/CP-NOPW", json={"securityProfile": 2})
    assert response.status_code == 422
    assert "needs a password" in response.json()["detail"]


# -- profile 2: TLS + Basic (docs/security.md, "Listeners" and "Passwords") -----------------


@pytest.mark.postgres
async def test_profile_2_connects_over_tls_and_is_refused_on_the_plain_port(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """A profile-2 charger on the profile-1 listener is refused (A05.FR.09, A00.FR.002)."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=2, password=KEY_HEX)
    credentials = basic(identity, KEY)
    status, body = await refusal(f"{csms_tls.plain_url}/{identity}", authorization=credentials)
    assert status == 403
    assert "needs tls" in body
    tls = client_tls(certificates)
    assert await connects(f"{csms_tls.tls_url}/{identity}", authorization=credentials, tls=tls)
    assert (await refusal(f"{csms_tls.tls_url}/{identity}", tls=tls))[0] == 401


async def test_connecting_higher_raises_the_profile_for_good(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """A05.FR.09: after a profile-1 charger came in over TLS, plain ws:// is refused."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    credentials = basic(identity, KEY)
    assert await connects(f"{csms_tls.plain_url}/{identity}", authorization=credentials)
    tls = client_tls(certificates)
    assert await connects(f"{csms_tls.tls_url}/{identity}", authorization=credentials, tls=tls)
    assert (await csms_tls.charge_point(identity))["securityProfile"] == 2
    assert (await refusal(f"{csms_tls.plain_url}/{identity}", authorization=credentials))[0] == 403


async def test_tls_below_1_2_and_plain_text_are_terminated(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """TLS 1.1 never completes a handshake, and ws:// to the TLS port gets nowhere."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=2, password=KEY_HEX)
    old = client_tls(certificates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    # Let the client offer TLS 1.1 at all, so that the refusal is the server's.
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    # OpenSSL answers with a protocol_version alert or just drops the connection.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await connects(
            f"{csms_tls.tls_url}/{identity}", authorization=basic(identity, KEY), tls=old
        )
    plain_to_tls = f"ws://127.0.0.1:{csms_tls.running.app.ocpp_tls_port}/ocpp/{identity}"
    with pytest.raises(Exception, match=r"(?i)(did not receive|invalid|connection|status)"):
        await connects(plain_to_tls, authorization=basic(identity, KEY))


async def test_no_compression_is_negotiated(csms_tls: SecureCsms, certificates: Pki) -> None:
    """A00.FR.320: permessage-deflate offered by the charger is not taken."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=2, password=KEY_HEX)
    async with connect(
        f"{csms_tls.tls_url}/{identity}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic(identity, KEY)},
        ssl=client_tls(certificates),
        compression="deflate",
    ) as websocket:
        assert websocket.response is not None
        assert "Sec-WebSocket-Extensions" not in websocket.response.headers


async def test_tls_only_deployment_has_no_plain_listener(
    database_url: str, certificates: Pki
) -> None:
    """With plain_listener off there is no ws:// port, and a profile-2 charger connects over TLS."""
    async with secure_csms(database_url, certificates, plain_listener=False) as csms:
        with pytest.raises(RuntimeError):
            _ = csms.running.app.ocpp_port
        identity = new_identity()
        await csms.register(identity, securityProfile=2, password=KEY_HEX)
        assert await connects(
            f"{csms.tls_url}/{identity}",
            authorization=basic(identity, KEY),
            tls=client_tls(certificates),
        )


# -- profile 3: mutual TLS (CN binding) ---------------------------------------------------


@pytest.mark.postgres
async def test_profile_3_client_certificate_is_bound_to_its_identity(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """A certificate of charger A never lets anyone in as charger B."""
    charger_a, charger_b = new_identity("A"), new_identity("B")
    for identity in (charger_a, charger_b):
        await csms_tls.register(identity, securityProfile=3)
    cert_a = certificates.client(charger_a, organization="ACME CPO")
    tls_a = client_tls(certificates, cert_a)
    assert await connects(f"{csms_tls.tls_url}/{charger_a}", tls=tls_a)
    status, body = await refusal(f"{csms_tls.tls_url}/{charger_b}", tls=tls_a)
    assert status == 401
    assert "CN does not match" in body
    # Nor do B's Basic credentials help while A's certificate is presented.
    await csms_tls.register(charger_b, password=KEY_HEX)
    assert (
        await refusal(
            f"{csms_tls.tls_url}/{charger_b}", tls=tls_a, authorization=basic(charger_b, KEY)
        )
    )[0] == 401


async def test_profile_3_without_a_certificate_is_refused(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """Profile 3 without a client certificate gets 401, even with the right Basic credentials."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=3, password=KEY_HEX)
    tls = client_tls(certificates)
    status, body = await refusal(
        f"{csms_tls.tls_url}/{identity}", tls=tls, authorization=basic(identity, KEY)
    )
    assert status == 401
    assert "client cert" in body


@pytest.mark.parametrize("problem", ["untrusted", "expired"])
async def test_untrusted_or_expired_certificates_fail_the_handshake(
    csms_tls: SecureCsms, certificates: Pki, problem: str
) -> None:
    """A00.FR.403: the chain is verified before any HTTP is read."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=3)
    if problem == "untrusted":
        cert = pki.make_client_cert(
            certificates.other_ca, certificates.directory, common_name=identity
        )
    else:
        ten_days_ago = datetime.now(UTC) - timedelta(days=10)
        cert = certificates.client(identity, days=1, not_before=ten_days_ago)
    # With TLS 1.3 the client sees the server's verdict on its certificate only after its
    # side of the handshake: as a TLS alert, a reset, or a connection closed before HTTP.
    with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
        await connects(f"{csms_tls.tls_url}/{identity}", tls=client_tls(certificates, cert))


def expired_client(certificates: Pki, identity: str) -> pki.Issued:
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    return certificates.client(identity, days=1, not_before=ten_days_ago)


def tls_1_2_only(context: ssl.SSLContext) -> ssl.SSLContext:
    # TLS 1.2 sends the client certificate in the clear, so csms can tell whose it was.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.mark.postgres
async def test_a_failed_tls_handshake_is_logged_counted_and_published(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """A00.FR.407/408: an expired client certificate fails the handshake; csms logs the
    peer address and reason, counts it, and publishes a security.event for the charger the
    certificate names."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=3)
    tls = tls_1_2_only(client_tls(certificates, expired_client(certificates, identity)))
    mqtt = csms_tls.running.app.settings.mqtt
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        with capture_logs() as logs:
            with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
                await connects(f"{csms_tls.tls_url}/{identity}", tls=tls)
            (event,) = await events.until(1, of_type="security.event")
    assert event["subject"] == identity
    assert event["data"]["type"] == "InvalidChargePointCertificate"
    assert event["data"]["techInfo"] == "tls handshake failed: certificate has expired"
    assert event["data"]["remoteAddress"] == "127.0.0.1"
    (failed,) = [entry for entry in logs if entry["event"] == "tls_handshake_failed"]
    assert failed["remote_address"] == "127.0.0.1"
    assert failed["reason"] == "certificate has expired"
    assert failed["certificate_cn"] == identity
    async with csms_tls.running.api() as api:
        counters = (await api.get("/counters")).json()["counters"]
    assert counters["tls.handshake_failed"] == 1
    assert counters["tls.handshake_failed.certificate has expired"] == 1


async def test_failed_handshakes_without_a_readable_identity_are_logged_and_counted(
    csms_tls: SecureCsms, certificates: Pki
) -> None:
    """TLS 1.3 hides the client certificate and TLS 1.1 never gets to it: both failures are
    logged and counted, and no charger gets an event it cannot be tied to."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=3)
    tls_1_3 = client_tls(certificates, expired_client(certificates, identity))
    tls_1_3.minimum_version = ssl.TLSVersion.TLSv1_3
    old = client_tls(certificates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with capture_logs() as logs:
        for context in (tls_1_3, old):
            with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
                await connects(f"{csms_tls.tls_url}/{identity}", tls=context)
        await csms_tls.running.app.ocpp.wait_background()
    failed = [entry for entry in logs if entry["event"] == "tls_handshake_failed"]
    assert [entry["certificate_cn"] for entry in failed] == [None, None]
    assert failed[0]["reason"] == "certificate has expired"
    assert "version" in failed[1]["reason"] or "protocol" in failed[1]["reason"]
    assert csms_tls.running.app.counters["tls.handshake_failed"] == 2
    async with csms_tls.running.app.database.sessions() as db:
        assert await security.list_security_events(db, charge_point_id=identity) == []


async def test_organization_and_serial_rules(database_url: str, certificates: Pki) -> None:
    """A00.FR.404/405: O must be the CPO's; with client_cn = serial, CN is the serial number."""
    async with secure_csms(
        database_url, certificates, organization="ACME CPO", client_cn="serial"
    ) as csms:
        identity, serial = new_identity(), "SN-0042"
        await csms.register(identity, securityProfile=3)
        url = f"{csms.tls_url}/{identity}"
        by_identity = certificates.client(identity, organization="ACME CPO")
        assert (await refusal(url, tls=client_tls(certificates, by_identity)))[0] == 401
        # The serial number csms knows comes from the charger's BootNotification.
        await csms.register(identity, securityProfile=1, password=KEY_HEX)
        async with session(
            f"{csms.plain_url}/{identity}", authorization=basic(identity, KEY), boot=False
        ) as charger:
            await charger.call(
                "BootNotification",
                {
                    "chargePointVendor": "V",
                    "chargePointModel": "M",
                    "chargeBoxSerialNumber": serial,
                },
            )
        wrong_o = certificates.client(serial, organization="Evil Inc", name="wrong-o")
        assert (await refusal(url, tls=client_tls(certificates, wrong_o)))[0] == 401
        right = certificates.client(serial, organization="ACME CPO", name="right")
        assert await connects(url, tls=client_tls(certificates, right))
        assert (await csms.charge_point(identity))["securityProfile"] == 3


# -- the live session is untouchable, password rotation (SecWP A01), rate limit -------------


@pytest.mark.postgres
async def test_failed_attempt_leaves_the_live_session_alone(csms_tls: SecureCsms) -> None:
    """A second connection with wrong credentials gets 401; the live one goes on."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    url = f"{csms_tls.plain_url}/{identity}"
    async with session(url, authorization=basic(identity, KEY)) as live:
        before = csms_tls.running.chargers[identity]
        assert (await refusal(url, authorization=basic(identity, b"wrong-password-16")))[0] == 401
        assert (await refusal(url))[0] == 401
        assert csms_tls.running.chargers[identity] is before
        assert "currentTime" in await live.call("Heartbeat", {})
    assert (await csms_tls.charge_point(identity))["securityProfile"] == 1


@asynccontextmanager
async def answering(url: str, authorization: str) -> AsyncIterator[StrictCharger]:
    async with session(url, authorization=authorization) as raw:
        charger = StrictCharger(raw=raw)
        task = asyncio.create_task(charger.serve())
        try:
            yield charger
        finally:
            task.cancel()


@pytest.mark.postgres
@pytest.mark.parametrize("answer", ["Accepted", "Rejected", "NotSupported"])
async def test_password_rotation_takes_effect_only_when_accepted(
    csms_tls: SecureCsms, answer: str
) -> None:
    """A01.FR.03-05: the new key replaces the old one only on Accepted."""
    identity = new_identity()
    new_hex = "ffeeddccbbaa99887766554433221100fedcba98"
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    url = f"{csms_tls.plain_url}/{identity}"
    async with answering(url, basic(identity, KEY)) as charger, csms_tls.running.api() as api:
        charger.answers["ChangeConfiguration"] = {"status": answer}
        response = await api.post(
            f"/charge-points/{identity}/commands/ChangeConfiguration",
            json={"key": "AuthorizationKey", "value": new_hex},
        )
        assert response.status_code == 200, response.text
        assert charger.received[-1] == (
            "ChangeConfiguration",
            {"key": "AuthorizationKey", "value": new_hex},
        )
        records = (await api.get(f"/charge-points/{identity}/commands")).json()
        config = (await api.get(f"/charge-points/{identity}/configuration")).json()
    stored = orjson.dumps([records, config]).decode()
    assert new_hex not in stored
    old, new = basic(identity, KEY), basic(identity, bytes.fromhex(new_hex))
    if answer == "Accepted":
        assert (await refusal(url, authorization=old))[0] == 401
        assert await connects(url, authorization=new)
    else:
        assert await connects(url, authorization=old)
        assert (await refusal(url, authorization=new))[0] == 401


@pytest.mark.parametrize(
    ("key", "value", "detail"),
    [
        ("AuthorizationKey", "not-hex-at-all-but-long-enough", "hex digits"),
        ("AuthorizationKey", "00112233445566778899aabbccddee", "hex digits"),  # 15 bytes
        ("SecurityProfile", "0", "may not go below"),
        ("SecurityProfile", "7", "0, 1, 2 or 3"),
    ],
)
async def test_unsafe_configuration_changes_are_refused(
    csms_tls: SecureCsms, key: str, value: str, detail: str
) -> None:
    """A weak AuthorizationKey or a lower or unknown SecurityProfile is a 422, never sent."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    async with answering(f"{csms_tls.plain_url}/{identity}", basic(identity, KEY)) as charger:
        async with csms_tls.running.api() as api:
            response = await api.post(
                f"/charge-points/{identity}/commands/ChangeConfiguration",
                json={"key": key, "value": value},
            )
        assert response.status_code == 422
        assert detail in response.json()["detail"]
        assert charger.received == []


async def throttled_or_refused(url: str, authorization: str) -> tuple[int, str | None]:
    """The status of a refused upgrade and its Retry-After header."""
    with pytest.raises(InvalidStatus) as caught:
        async with session(url, authorization=authorization, boot=False):
            pass
    response = caught.value.response
    return response.status_code, response.headers.get("Retry-After")


@pytest.mark.postgres
async def test_failures_are_throttled_per_identity_and_correct_credentials_still_get_in(
    database_url: str, certificates: Pki
) -> None:
    """Past max_failed_auth failures an identity's wrong guesses get 429 with Retry-After;
    its right key still connects, and so does every other charger behind the same NAT."""
    async with secure_csms(database_url, certificates, max_failed_auth=3) as csms:
        noisy, healthy = new_identity("NOISY"), new_identity("OK")
        for identity in (noisy, healthy):
            await csms.register(identity, securityProfile=1, password=KEY_HEX)
        url = f"{csms.plain_url}/{noisy}"
        wrong = basic(noisy, b"guess-guess-guess")
        for _ in range(3):
            assert (await refusal(url, authorization=wrong))[0] == 401
        status, retry_after = await throttled_or_refused(url, wrong)
        assert status == 429
        assert retry_after is not None
        assert int(retry_after) >= 1
        # The same address, another identity: neither its failures nor its login suffer.
        other = f"{csms.plain_url}/{healthy}"
        assert (await refusal(other, authorization=basic(healthy, b"typo-typo-typo-x")))[0] == 401
        assert await connects(other, authorization=basic(healthy, KEY))
        # Correct credentials are never refused, however many failures came before.
        assert await connects(url, authorization=basic(noisy, KEY))
        async with csms.running.api() as api:
            counters = (await api.get("/counters")).json()["counters"]
        assert counters["auth.throttled"] == 1


async def test_failures_per_address_are_throttled_only_at_their_own_higher_limit(
    database_url: str, certificates: Pki
) -> None:
    """One address failing for many identities is throttled at max_failed_auth_per_address,
    and even then a charger with the right key connects from it."""
    async with secure_csms(
        database_url, certificates, max_failed_auth=10, max_failed_auth_per_address=4
    ) as csms:
        strangers = [new_identity("X") for _ in range(5)]
        for identity in strangers:
            await csms.register(identity, securityProfile=1, password=KEY_HEX)
        wrong = b"guess-guess-guess"
        for identity in strangers[:4]:
            url = f"{csms.plain_url}/{identity}"
            assert (await refusal(url, authorization=basic(identity, wrong)))[0] == 401
        last = strangers[4]
        url = f"{csms.plain_url}/{last}"
        assert (await throttled_or_refused(url, basic(last, wrong)))[0] == 429
        assert await connects(url, authorization=basic(last, KEY))


@pytest.mark.postgres
async def test_old_scrypt_hash_is_upgraded_on_the_next_login(
    database_url: str, certificates: Pki
) -> None:
    """A key stored as scrypt (before this release) still logs in, and is then kept as an
    HMAC with the pepper; the next login is checked against the new hash."""
    async with secure_csms(database_url, certificates, password_pepper="t" * 32) as csms:
        await check_upgrade(csms)


async def check_upgrade(csms_tls: SecureCsms) -> None:
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    salt = b"legacy-salt-16by"
    digest = hashlib.scrypt(KEY, salt=salt, n=2**14, r=8, p=1)
    legacy = f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"
    app = csms_tls.running.app
    await app.database.writer.submit(
        partial(
            chargers.upsert_charge_point,
            charge_point_id=identity,
            values={"password_hash": legacy},
            now=datetime.now(UTC),
        )
    )
    url = f"{csms_tls.plain_url}/{identity}"
    assert await connects(url, authorization=basic(identity, KEY))
    await app.ocpp.wait_background()
    async with app.database.sessions() as db:
        row = await chargers.get_charge_point(db, identity)
    assert row is not None
    assert row.password_hash is not None
    assert row.password_hash.startswith(f"hmac-sha256${app.passwords.pepper_id}$")
    assert await connects(url, authorization=basic(identity, KEY))
    assert (await refusal(url, authorization=basic(identity, b"guess-guess-guess")))[0] == 401


async def test_keys_still_verify_after_a_restart_with_no_pepper_configured(
    tmp_path: Path, certificates: Pki
) -> None:
    """make run needs no setup: the pepper csms generated next to the SQLite database is
    read again at the next start, so a key set before the restart still logs in."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    identity = new_identity()
    async with secure_csms(database_url, certificates) as csms:
        await csms.register(identity, securityProfile=1, password=KEY_HEX)
        pepper_id = csms.running.app.passwords.pepper_id
    async with secure_csms(database_url, certificates) as csms:
        assert csms.running.app.passwords.pepper_id == pepper_id
        url = f"{csms.plain_url}/{identity}"
        assert await connects(url, authorization=basic(identity, KEY))


async def test_min_profile_refuses_unsecured_chargers(database_url: str, certificates: Pki) -> None:
    """With min_profile 1 a charger without a password gets 401; with one it connects."""
    async with secure_csms(database_url, certificates, min_profile=1) as csms:
        identity = new_identity()
        assert (await refusal(f"{csms.plain_url}/{identity}"))[0] == 401
        await csms.register(identity, password=KEY_HEX)
        assert await connects(f"{csms.plain_url}/{identity}", authorization=basic(identity, KEY))


# -- the bundled simulator at every profile ---------------------------------------------------


@pytest.mark.parametrize("profile", [0, 1, 2, 3])
async def test_simulator_connects_at_every_profile(
    csms_tls: SecureCsms, certificates: Pki, profile: int
) -> None:
    """csms-sim's Charger with --password / --ca-file / --cert-file, as the README shows."""
    identity = new_identity(f"SIM{profile}")
    registration: dict[str, Any] = {"securityProfile": profile}
    if profile in (1, 2):
        registration["password"] = KEY_HEX
    await csms_tls.register(identity, **registration)
    url = csms_tls.plain_url if profile < 2 else csms_tls.tls_url
    client = certificates.client(identity) if profile == 3 else None
    tls = (
        make_ssl_context(
            str(certificates.ca.cert_file),
            str(client.cert_file) if client else None,
            str(client.key_file) if client else None,
        )
        if profile >= 2
        else None
    )
    password = KEY_HEX if profile in (1, 2) else None
    async with Charger(url=url, identity=identity, password=password, ssl=tls) as charger:
        answer = await charger.boot()
    assert answer["status"] == "Accepted"
    assert (await csms_tls.charge_point(identity))["securityProfile"] == profile


@pytest.mark.postgres
async def test_failed_attempts_are_security_events(csms_tls: SecureCsms, certificates: Pki) -> None:
    """Logged, stored and published with identity, address and reason; never the password."""
    identity = new_identity()
    await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    await csms_tls.register(f"{identity}-B", securityProfile=3)
    mqtt = csms_tls.running.app.settings.mqtt
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        wrong = basic(identity, b"not-the-password-at-all")
        assert (await refusal(f"{csms_tls.plain_url}/{identity}", authorization=wrong))[0] == 401
        tls_a = client_tls(certificates, certificates.client(identity))
        assert (await refusal(f"{csms_tls.tls_url}/{identity}-B", tls=tls_a))[0] == 401
        assert (
            await refusal(f"{csms_tls.plain_url}/{new_identity()}-NEVER-SEEN", authorization=wrong)
        )[0] == 401
        password_event, certificate_event = await events.until(2, of_type="security.event")
    assert password_event["subject"] == identity
    assert password_event["data"] == {
        "type": "FailedToAuthenticationAtCentralSystem",
        "timestamp": password_event["time"],
        "source": "csms",
        "techInfo": "401 wrong password",
        "remoteAddress": "127.0.0.1",
    }
    assert certificate_event["subject"] == f"{identity}-B"
    assert certificate_event["data"]["type"] == "InvalidChargePointCertificate"
    assert "CN does not match" in certificate_event["data"]["techInfo"]
    async with csms_tls.running.app.database.sessions() as db:
        (row,) = await security.list_security_events(db, charge_point_id=identity)
    assert (row.source, row.remote_address) == ("csms", "127.0.0.1")
    assert b"not-the-password" not in orjson.dumps([password_event, certificate_event])


@pytest.mark.parametrize("field", ["securityProfile", "password", "passwordHexCompat"])
async def test_null_security_fields_are_refused(csms_tls: SecureCsms, field: str) -> None:
    """null for securityProfile, password or passwordHexCompat is a 422 saying 'not null'."""
    async with csms_tls.running.api() as api:
        response = await api.put("/charge-points/CP-NULL", json={field: None})
    assert response.status_code == 422
    assert "not null" in response.json()["detail"]


async def test_concurrent_upgrades_each_get_their_own_registration(csms_tls: SecureCsms) -> None:
    """Many upgrades at once (a reconnect storm): each is judged by its own profile and password."""
    secured = [new_identity("P1") for _ in range(20)]
    for identity in secured:
        await csms_tls.register(identity, securityProfile=1, password=KEY_HEX)
    open_ = [new_identity("P0") for _ in range(20)]

    async def attempt(identity: str, authorization: str | None) -> int:
        try:
            async with session(f"{csms_tls.plain_url}/{identity}", authorization=authorization):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    outcomes = await asyncio.gather(
        *(attempt(identity, basic(identity, KEY)) for identity in secured[:10]),
        *(attempt(identity, None) for identity in secured[10:]),
        *(attempt(identity, None) for identity in open_),
    )
    assert outcomes == [101] * 10 + [401] * 10 + [101] * 20
