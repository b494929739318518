"""The websocket shell: URL and subprotocol, basic auth, TLS with client certificates."""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from simulators import Charger
from simulators.charger import basic_auth_header, make_ssl_context

WAIT = 10.0


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
