"""The csms-sim command: arguments, help, progress output, summary, exit status, signals."""

from __future__ import annotations

import asyncio
import io
import json
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.__main__ import main, raise_fd_limit
from simulators.fleet import Progress, ProgressMode, Snapshot
from tests.support import MS, free_port

CSMS_SIM = Path(sys.executable).parent / "csms-sim"
WAIT = 60_000 * MS


def test_help_documents_flags_and_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    """`csms-sim run --help` documents every flag and lists the shipped scenarios."""
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--url",
        "--chargers",
        "--connectors",
        "--scenario",
        "--speed",
        "--duration",
        "--until-done",
        "--summary",
        "--identity-pattern",
        "--vendor",
        "--model",
        "--firmware",
        "--serial-pattern",
        "--password",
        "--ca-file",
        "--cert-file",
        "--key-file",
        "--progress",
    ):
        assert flag in text
    for name in ("idle", "commute", "faults", "boot-storm"):
        assert name in text


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "--url", "http://127.0.0.1:9000/ocpp"],
        ["run", "--url", "ws://127.0.0.1:9/ocpp", "--ca-file", "ca.pem"],
        ["run", "--url", "ws://127.0.0.1:9/ocpp", "--scenario", "no-such-scenario"],
        ["run", "--url", "ws://127.0.0.1:9/ocpp", "--chargers", "0"],
        ["run", "--url", "ws://127.0.0.1:9/ocpp", "--duration", "soon"],
        ["run", "--url", "ws://127.0.0.1:9/ocpp", "--vendor", "V" * 21],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments are refused with exit status 2 and a message."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_scenarios_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`csms-sim scenarios` lists the shipped scenarios with their descriptions."""
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "commute" in out
    assert "boot storm" in out


def test_fd_limit_is_raised_for_many_chargers() -> None:
    """The soft open-files limit is raised (within the hard limit) for many chargers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, soft + 100) if hard != resource.RLIM_INFINITY else soft + 100
    assert raise_fd_limit(wanted - 256) >= min(wanted, hard if hard > 0 else wanted)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft


SNAPSHOT = Snapshot(12.5, 10, 9, 8, 3, 42.0, 0, 4.2, 19.0, 5, 2)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (ProgressMode.PLAIN, "[   12.5s] connected 9/10  booted 8  charging 3"),
        (ProgressMode.LIVE, "\r\x1b[2K[   12.5s] connected 9/10"),
        (ProgressMode.OFF, ""),
    ],
)
def test_progress_display(mode: ProgressMode, expected: str) -> None:
    """A live line on terminals, plain lines otherwise, nothing when off."""
    stream = io.StringIO()
    progress = Progress(mode, stream=stream)
    progress.show(SNAPSHOT)
    progress.end()
    assert stream.getvalue().startswith(expected)
    if mode is ProgressMode.PLAIN:
        assert "msg/s 42  errors 0  latency p50 4.2 ms p99 19.0 ms" in stream.getvalue()


def test_progress_auto_is_plain_off_a_terminal() -> None:
    """AUTO chooses plain periodic lines when the stream is not a terminal."""
    progress = Progress(ProgressMode.AUTO, stream=io.StringIO())
    assert progress.mode is ProgressMode.PLAIN
    assert progress.interval == 10.0


SCENARIO = """
name = "cli-test"
description = "two chargers, long sessions"
speed = 1.0
[config]
MeterValueSampleInterval = 1
[sessions]
per_connector = 1
arrival = { start = "0.5s", spread = "0.5s" }
dwell = "1h"
authorize = true
id_tag = "CLI-{n:03d}"
"""


async def register(csms: Any, tags: list[str]) -> None:
    """Make the CSMS accept these idTags."""
    async with httpx.AsyncClient(
        base_url=csms.api_url, headers={"Authorization": f"Bearer {csms.api_token}"}
    ) as client:
        for tag in tags:
            response = await client.put(f"/id-tags/{tag}", json={"status": "Accepted"})
            assert response.status_code < 300


def idle_scenario(tmp_path: Path) -> Path:
    """A scenario whose chargers all connect at once, then only idle."""
    path = tmp_path / "idle.toml"
    path.write_text('name = "idle-now"\n[connect]\nspread = "0s"\n')
    return path


async def run_sim(*args: str) -> tuple[int | None, bytes, bytes]:
    """`csms-sim run` with these arguments, to its end: exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(CSMS_SIM),
        "run",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    return process.returncode, out, err


async def test_cli_run_writes_summary(csms: Any, tmp_path: Path) -> None:
    """`csms-sim run` against the CSMS: plain progress lines, a JSON summary, exit status 0."""
    summary_path = tmp_path / "summary.json"
    status, _, err = await run_sim(
        "--url",
        csms.ocpp_url,
        "--chargers",
        "3",
        "--scenario",
        str(idle_scenario(tmp_path)),
        "--duration",
        "3s",
        "--identity-pattern",
        "CLI-IDLE-{n:02d}",
        "--summary",
        str(summary_path),
        "--progress-interval",
        "0.5",
    )
    assert status == 0, err.decode()
    lines = err.decode().splitlines()
    assert any(line.startswith("[") and "connected" in line for line in lines)
    summary = json.loads(summary_path.read_text())
    for key in (
        "chargers",
        "connected",
        "booted",
        "transactions_started",
        "transactions_stopped",
        "messages_sent",
        "messages_received",
        "callerrors_received",
        "protocol_errors",
    ):
        assert key in summary
    assert summary["chargers"] == 3
    assert summary["booted"] == 3
    assert summary["latency_ms"]["p50"] is not None
    assert summary["latency_ms"]["p99"] is not None
    assert summary["ok"] is True


async def test_sigint_stops_open_sessions_cleanly(csms: Any, tmp_path: Path) -> None:
    """SIGINT ends the run: open sessions are stopped (reason Local) before the summary."""
    scenario = tmp_path / "long.toml"
    scenario.write_text(SCENARIO)
    await register(csms, ["CLI-001", "CLI-002"])
    summary_path = tmp_path / "summary.json"
    process = await asyncio.create_subprocess_exec(
        str(CSMS_SIM),
        "run",
        "--url",
        csms.ocpp_url,
        "--chargers",
        "2",
        "--connectors",
        "1",
        "--identity-pattern",
        "CLI-{n:03d}",
        "--scenario",
        str(scenario),
        "--summary",
        str(summary_path),
        "--progress",
        "plain",
        "--progress-interval",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(WAIT):
        while b"charging 2" not in (line := await process.stderr.readline()):
            assert line, "csms-sim ended early"
        process.send_signal(signal.SIGINT)
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    summary = json.loads(summary_path.read_text())
    assert summary["ended_by"] == "stopped"
    assert summary["transactions_started"] == summary["transactions_stopped"] == 2
    async with httpx.AsyncClient(
        base_url=csms.api_url, headers={"Authorization": f"Bearer {csms.api_token}"}
    ) as client:
        for identity in ("CLI-001", "CLI-002"):
            body = (await client.get("/transactions", params={"chargePointId": identity})).json()
            [tx] = body["items"]
            assert (tx["status"], tx["stopReason"]) == ("completed", "Local")


async def test_exit_status_1_on_protocol_errors(tmp_path: Path) -> None:
    """Errors make the exit status 1: here a server that answers with CALLERRORs."""
    from websockets.asyncio.server import serve

    async def reject_all(ws: Any) -> None:
        async for message in ws:
            frame = json.loads(message)
            await ws.send(json.dumps([4, frame[1], "InternalError", "no", {}]))

    async with serve(reject_all, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        status, out, _ = await run_sim(
            "--url",
            f"ws://127.0.0.1:{port}/ocpp",
            "--scenario",
            str(idle_scenario(tmp_path)),
            "--duration",
            "1.5s",
            "--progress",
            "off",
        )
    assert status == 1
    summary = json.loads(out)
    assert summary["callerrors_received"] >= 1
    assert summary["ok"] is False


async def test_exit_status_1_when_every_connection_is_refused(tmp_path: Path) -> None:
    """A run whose chargers never get a connection fails: ok false, exit status 1."""
    port = free_port()  # a port nobody listens on: connections are refused
    status, out, err = await run_sim(
        "--url",
        f"ws://127.0.0.1:{port}/ocpp",
        "--scenario",
        str(idle_scenario(tmp_path)),
        "--chargers",
        "2",
        "--duration",
        "1.5s",
        "--progress",
        "off",
    )
    assert status == 1, err.decode()
    summary = json.loads(out)
    assert summary["counters"]["connects"] == 0
    assert summary["counters"]["connect_failures"] >= 2
    assert summary["unreachable"] == 2
    assert summary["ok"] is False
    assert any("connect failed" in error for error in summary["errors"])
