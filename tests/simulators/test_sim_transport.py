"""The websocket shell: URL and subprotocol, basic auth, TLS with client certificates."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from simulators import Charger
from simulators.charger import basic_auth_header, make_ssl_context
from tests.pki import Issued, make_ca, make_client_cert, make_server_cert, pem, sign_csr
from tests.support import MS

WAIT = 10_000 * MS


def test_basic_auth_header() -> None:
    """Basic credentials are identity:password, base64-encoded (OCPP security profile 1)."""
    header = basic_auth_header("CP-1", "s3cret-s3cret-s3")
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]) == b"CP-1:s3cret-s3cret-s3"


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Recorder:
    """A tiny OCPP server that records the handshake and answers BootNotification."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.subprotocols: list[str | None] = []

    def process_request(self, connection: ServerConnection, request: Request) -> None:
        self.paths.append(request.path)
        self.headers.append(dict(request.headers.raw_items()))

    async def handler(self, ws: ServerConnection) -> None:
        self.subprotocols.append(ws.subprotocol)
        async for message in ws:
            frame = orjson.loads(message)
            answer = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}
            await ws.send(orjson.dumps([3, frame[1], answer]).decode())


async def test_connects_to_url_slash_identity_with_subprotocol_and_password() -> None:
    """The charger connects to {url}/{identity}, offers ocpp1.6 and sends its basic-auth header."""
    recorder = Recorder()
    async with serve(
        recorder.handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        process_request=recorder.process_request,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with Charger(
            url=f"ws://127.0.0.1:{port}/ocpp/", identity="CP 7", password="pass-pass-pass-16"
        ) as cp:
            assert (await cp.boot())["status"] == "Accepted"
    assert recorder.paths == ["/ocpp/CP%207"]
    assert recorder.subprotocols == ["ocpp1.6"]
    assert recorder.headers[0]["Authorization"] == basic_auth_header("CP 7", "pass-pass-pass-16")


async def test_tls_with_client_certificate(tmp_path: Path) -> None:
    """wss:// works with a CA file, and a client certificate when the server demands one."""
    server_cert, server_key = _certificate(tmp_path, "server")
    client_cert, client_key = _certificate(tmp_path, "client")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_cert, server_key)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(client_cert)
    recorder = Recorder()
    async with serve(
        recorder.handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ssl=server_context,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        context = make_ssl_context(str(server_cert), str(client_cert), str(client_key))
        async with Charger(url=f"wss://127.0.0.1:{port}/ocpp", identity="TLS-1", ssl=context) as cp:
            assert (await cp.boot())["status"] == "Accepted"
        untrusted = make_ssl_context(str(client_cert))
        stranger = Charger(url=f"wss://127.0.0.1:{port}/ocpp", identity="TLS-2", ssl=untrusted)
        try:
            with pytest.raises(ConnectionError, match=r"(?i)certificate"):
                await stranger.connect(timeout=WAIT)
        finally:
            await stranger.close()


async def test_connection_refused_raises_for_scripted_chargers() -> None:
    """A scripted charger that cannot connect raises ConnectionError instead of hanging."""
    cp = Charger(url="ws://127.0.0.1:9/ocpp", identity="NOBODY", open_timeout=2.0)
    try:
        with pytest.raises(ConnectionError, match="cannot connect"):
            await cp.connect()
    finally:
        await cp.close()


class SigningCentralSystem:
    """A central system at security profile 3 that has the charger's certificate renewed
    (SecWP A02) and keeps the certificate each connection presented."""

    def __init__(self, ca: Issued) -> None:
        self.ca = ca
        self.presented: list[x509.Certificate] = []
        self.signed: list[x509.Certificate] = []
        self.changed = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.presented.append(x509.load_der_x509_certificate(der))
        self.changed.set()
        async for message in ws:
            frame = orjson.loads(message)
            if frame[0] != 2:
                continue
            action, payload = frame[2], frame[3]
            answer: dict[str, Any] = {"status": "Accepted"}
            if action == "BootNotification":
                answer |= {"currentTime": "2026-01-01T00:00:00Z", "interval": 300}
            elif action == "Heartbeat":
                answer = {"currentTime": "2026-01-01T00:00:00Z"}
            await ws.send(orjson.dumps([3, frame[1], answer]).decode())
            if action == "BootNotification":
                trigger = {"requestedMessage": "SignChargePointCertificate"}
                await ws.send(orjson.dumps([2, "t", "ExtendedTriggerMessage", trigger]).decode())
            elif action == "SignCertificate":
                self.signed.append(sign_csr(self.ca, payload["csr"]))
                chain = {"certificateChain": pem(self.signed[-1])}
                await ws.send(orjson.dumps([2, "s", "CertificateSigned", chain]).decode())

    async def wait_for_connections(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.presented) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_reconnects_with_the_certificate_just_signed(tmp_path: Path) -> None:
    """SecWP A02: after CertificateSigned the charger reconnects, presenting the new certificate."""
    ca = make_ca(tmp_path, common_name="CPO Root")
    server_cert = make_server_cert(ca, tmp_path)
    first = make_client_cert(ca, tmp_path, common_name="CP-A02")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_cert.cert_file, server_cert.key_file)
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(ca.cert_file)
    central = SigningCentralSystem(ca)
    async with serve(
        central.handler,
        "127.0.0.1",
        0,
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ssl=server_context,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        context = make_ssl_context(str(ca.cert_file), str(first.cert_file), str(first.key_file))
        async with Charger(
            url=f"wss://127.0.0.1:{port}/ocpp", identity="CP-A02", ssl=context
        ) as cp:
            assert (await cp.boot())["status"] == "Accepted"
            signed = await cp.next_incoming("CertificateSigned", timeout=WAIT)
            assert signed.response == {"status": "Accepted"}
            await central.wait_for_connections(2)
            await cp.wait_for(lambda: cp.connected, timeout=WAIT)
            assert "currentTime" in await cp.heartbeat()  # on the new connection
    assert central.presented == [first.certificate, *central.signed]
    assert cp.core.keys.certificate == central.signed[0]
    assert cp.stats.protocol_errors == 0, cp.stats.errors
