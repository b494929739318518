"""Safe defaults: a loud warning when anyone on the network can act as a charger, a token
long enough when the API is reachable, and a clean stop whatever the offline grace."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import pytest

from csms.config import ConfigError, exposure_warnings, load_settings
from tests.support import MS

CSMS = [sys.executable, "-m", "csms"]


@pytest.mark.parametrize(
    ("environ", "warned"),
    [
        ({}, True),
        ({"CSMS_OCPP__HOST": "127.0.0.1"}, False),
        ({"CSMS_SECURITY__MIN_PROFILE": "1"}, False),
        ({"CSMS_OCPP__UNKNOWN_CHARGERS": "reject"}, False),
        ({"CSMS_OCPP__ALLOW_UNKNOWN_CHARGERS": "false"}, False),
        ({"CSMS_OCPP__UNKNOWN_CHARGERS": "pending"}, False),
    ],
)
def test_exposure_is_named(environ: dict[str, str], warned: bool) -> None:
    """Plain listener beyond loopback + profile 0 + unknown chargers accepted: warned."""
    reasons = exposure_warnings(load_settings("config.toml", environ=environ))
    assert bool(reasons) == warned


@pytest.mark.parametrize(("token", "ok"), [("short-token", False), ("x" * 16, True)])
def test_api_token_needs_16_characters_beyond_loopback(token: str, ok: bool) -> None:
    """A reachable API needs a token of 16 characters or more; loopback may use any."""
    environ = {"CSMS_API__HOST": "0.0.0.0", "CSMS_API__TOKEN": token}
    if ok:
        assert load_settings(None, environ=environ).api.token == token
    else:
        with pytest.raises(ConfigError, match="16 characters"):
            load_settings(None, environ=environ)
    assert load_settings(None, environ={"CSMS_API__TOKEN": "short"}).api.token == "short"


async def test_shipped_config_warns_loudly_at_start(tmp_path: Path) -> None:
    """`csms serve` on the shipped config logs unsafe_configuration before csms_ready."""
    env = {
        "CSMS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/csms.db",
        "CSMS_OCPP__PORT": "0",
        "CSMS_API__PORT": "0",
        "CSMS_LOG__FORMAT": "json",
        "CSMS_OCPP__OFFLINE_GRACE": "0.1",
        "CSMS_MQTT__TOPIC_PREFIX": f"csms-defaults-{id(tmp_path)}",
    }
    process = await asyncio.create_subprocess_exec(
        *CSMS,
        "serve",
        "--config",
        "config.toml",
        env={**os.environ, **env},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    events: list[dict[str, object]] = []
    async with asyncio.timeout(20_000 * MS):
        while not events or events[-1].get("event") != "csms_ready":
            line = await process.stderr.readline()
            assert line, "csms exited before csms_ready"
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    warning = next(e for e in events if e.get("event") == "unsafe_configuration")
    assert warning["level"] == "warning"
    assert "Production configuration" in str(warning["fix"])
    # With a short offline_grace, SIGTERM still ends in a clean stop (issue 13).
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20_000 * MS):
        rest = (await process.stderr.read()).decode()
        code = await process.wait()
    assert code == 0
    assert "csms_stopped" in rest
    assert "shutdown_timed_out" not in rest
