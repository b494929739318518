"""Failed TLS handshakes on uvloop: logged, counted and published as on asyncio's loop
(docs/security.md, "Failed TLS handshakes")."""

from __future__ import annotations

import asyncio
import ssl
import warnings

import pytest
from structlog.testing import capture_logs
from websockets.exceptions import InvalidMessage

from tests.ocpp16.test_security_profiles import (
    Pki,
    certificates,
    client_tls,
    connects,
    expired_client,
    secure_csms,
    tls_1_2_only,
)
from tests.support import new_identity, subscribed

__all__ = ["certificates"]  # the module-scoped PKI fixture, shared


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_failed_handshakes_are_seen_under_uvloop_too(
    database_url: str, certificates: Pki
) -> None:
    """`csms serve` runs on uvloop when it is installed: there too an expired certificate
    is logged, counted and published, and a TLS 1.1 client is logged and counted, while a
    good profile-3 charger still gets in."""
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    async with secure_csms(database_url, certificates) as csms_tls:
        identity, good = new_identity(), new_identity()
        await csms_tls.register(identity, securityProfile=3)
        await csms_tls.register(good, securityProfile=3)
        tls = tls_1_2_only(client_tls(certificates, expired_client(certificates, identity)))
        old = client_tls(certificates)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1_1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        mqtt = csms_tls.running.app.settings.mqtt
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            with capture_logs() as logs:
                for context in (tls, old):
                    with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
                        await connects(f"{csms_tls.tls_url}/{identity}", tls=context)
                (event,) = await events.until(1, of_type="security.event")
        client = client_tls(certificates, certificates.client(good))
        assert await connects(f"{csms_tls.tls_url}/{good}", tls=client)
    assert (event["subject"], event["data"]["type"]) == (identity, "InvalidChargePointCertificate")
    assert event["data"]["techInfo"] == "tls handshake failed: certificate has expired"
    failed = [entry for entry in logs if entry["event"] == "tls_handshake_failed"]
    assert [entry["certificate_cn"] for entry in failed] == [identity, None]
    assert failed[0]["remote_address"] == "127.0.0.1"
    assert "version" in failed[1]["reason"] or "protocol" in failed[1]["reason"]
    assert csms_tls.running.app.counters["tls.handshake_failed"] == 2
