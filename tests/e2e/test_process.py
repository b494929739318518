"""The `csms` process: --help, migrate, and a clean SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.support import MS, TRANSPORTS, RawCharger

CSMS = [sys.executable, "-m", "csms"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CSMS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": "0",
        "CSMS_API__PORT": "0",
        "CSMS_LOG__FORMAT": "json",
        **extra,
    }


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CSMS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30_000 * MS):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_help_explains_every_subcommand() -> None:
    """`csms --help` lists serve, migrate and config; each has its own --help."""
    code, out, _ = await run("--help")
    assert code == 0
    for command in ("serve", "migrate", "config", "CSMS_<SECTION>__<KEY>"):
        assert command in out
    code, out, _ = await run("serve", "--help")
    assert code == 0
    assert "--config" in out


async def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    """`csms migrate` applies the migrations to an empty database and exits 0."""
    code, _, err = await run("migrate", env=env_for(tmp_path))
    assert code == 0, err
    assert "migrations_applied" in err
    assert (tmp_path / "csms.db").stat().st_size > 0


async def test_config_errors_exit_2_and_name_the_key(tmp_path: Path) -> None:
    """A bad environment override stops start-up with exit code 2 and the key's name."""
    code, _, err = await run("serve", env=env_for(tmp_path, CSMS_OCPP__PORT="abc"))
    assert code == 2
    assert "ocpp.port" in err


async def test_config_command_masks_the_token(tmp_path: Path) -> None:
    """`csms config` prints the effective configuration without the API token or pepper."""
    pepper = "pepper-" * 6
    env = env_for(tmp_path, CSMS_API__TOKEN="hush", CSMS_SECURITY__PASSWORD_PEPPER=pepper)
    code, out, _ = await run("config", env=env)
    assert code == 0
    shown = orjson.loads(out)
    assert shown["api"]["token"] == "***"
    assert shown["security"]["password_pepper"] == "***"
    assert pepper not in out
    assert shown["ocpp"]["port"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sigterm_closes_chargers_with_1001_and_exits_0(
    tmp_path: Path, transport: str
) -> None:
    """SIGTERM: chargers are closed with 1001, pending writes flushed, exit 0 within 10 s."""
    env = env_for(tmp_path, CSMS_OCPP__TRANSPORT=transport)
    process = await asyncio.create_subprocess_exec(
        *CSMS, "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    ready = await _wait_for_event(process.stderr, "csms_ready")
    assert ready["ocpp_transport"] == transport
    url = f"ws://127.0.0.1:{ready['ocpp_port']}/ocpp/CP-TERM"
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS) as ws:  # type: ignore[list-item]
        charger = RawCharger(ws)
        await charger.boot()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10_000 * MS):
            await ws.wait_closed()
            code = await process.wait()
    assert ws.close_code == 1001
    assert code == 0
    remaining = (await process.stderr.read()).decode()
    assert "csms_stopped" in remaining


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sigterm_exits_even_when_a_charger_never_answers_the_close(
    tmp_path: Path, transport: str
) -> None:
    """A half-open connection (a charger gone behind a NAT) never answers the closing
    handshake, so closing the chargers outlasts the shutdown grace: csms still exits,
    with its HTTP API thread, instead of hanging."""
    env = env_for(tmp_path, CSMS_OCPP__TRANSPORT=transport)
    process = await asyncio.create_subprocess_exec(
        *CSMS, "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    ready = await _wait_for_event(process.stderr, "csms_ready")
    reader, writer = await asyncio.open_connection("127.0.0.1", ready["ocpp_port"])
    writer.write(
        b"GET /ocpp/CP-GONE HTTP/1.1\r\nHost: csms\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    # From here on the "charger" reads nothing and sends nothing, not even its close.
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(20_000 * MS):
            code = await process.wait()
    finally:
        writer.close()
        if process.returncode is None:  # the hang this test is about: leave nothing behind
            process.kill()
            await process.wait()
    remaining = (await process.stderr.read()).decode()
    assert "shutdown_timed_out" in remaining
    assert (code, "csms_stopped" in remaining) == (0, True)


async def _wait_for_event(stream: asyncio.StreamReader, event: str) -> dict[str, object]:
    async with asyncio.timeout(20_000 * MS):
        while True:
            line = await stream.readline()
            assert line, f"csms exited before logging {event}"
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                return record
