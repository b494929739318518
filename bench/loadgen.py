"""The load generator processes: bench/node/loadgen.js in its three uses, and lifecycle.js.

- `run_load`: N chargers with one CALL outstanding each, figures over a measured window;
- `idle_chargers`: N chargers connected and booted, kept while a block runs;
- `command_client`: idle chargers answering HTTP commands sent one after the other;
- `run_sessions` (lifecycle.js): N chargers running whole charging sessions.

They run pinned to the generator's core and report their own CPU use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from processes import (
    GENERATOR_CORE,
    NODE_DIR,
    CoreTimes,
    Server,
    core_busy,
    core_times,
    drain_in_background,
    pinned,
)

LOADGEN = str(NODE_DIR / "loadgen.js")
# The C generator (bench/cgen/loadgen.c, built by `make bench-deps`): the same load mode and
# output as loadgen.js at a fraction of its CPU per call, for servers faster than Node can drive.
C_LOADGEN = str(Path(__file__).resolve().parent / "cgen" / "loadgen")
GENERATORS = {"node": ["node", LOADGEN], "c": [C_LOADGEN]}
LIFECYCLE = str(NODE_DIR / "lifecycle.js")


async def run_load(
    server: Server,
    *,
    connections: int,
    duration: float,
    warmup: float,
    extra: list[str] | None = None,
    on_window: Callable[[], None] | None = None,
    generator: str = "node",
) -> dict[str, Any]:
    """Run a load generator (`GENERATORS`) in load mode; the result, with the server's CPU
    over the window."""
    command = [
        *GENERATORS[generator],
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--prefix",
        f"B{uuid.uuid4().hex[:6]}-",
        *(extra or []),
    ]

    def on_mark(mark: str) -> None:
        if mark == "window_start" and on_window is not None:
            on_window()

    return await run_generator(command, server, on_mark)


async def run_sessions(
    server: Server,
    *,
    connections: int,
    duration: float,
    warmup: float,
    rate: float,
    id_tag: str,
    on_mark: Callable[[str], None],
) -> dict[str, Any]:
    """Run bench/node/lifecycle.js: chargers running whole sessions, `rate` sessions/s (0: all
    they can); the result, with the server's CPU over the window."""
    command = [
        "node",
        LIFECYCLE,
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--rate",
        str(rate),
        "--id-tag",
        id_tag,
        "--prefix",
        f"L{uuid.uuid4().hex[:6]}-",
    ]
    return await run_generator(command, server, on_mark)


async def run_generator(
    command: list[str], server: Server, on_mark: Callable[[str], None]
) -> dict[str, Any]:
    """Run a Node generator on its core; `on_mark` hears its {"event": ...} lines as they come.

    Its last stdout line is its result. The server's CPU and both cores' busy shares between
    the window_start and window_end marks are added to it.
    """
    process = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[bytes] = []
    drain_in_background(process.stderr, errors)
    line = b""
    marks: dict[str, tuple[float, float, CoreTimes]] = {}
    while raw := await process.stdout.readline():
        line = raw
        if raw.startswith(b'{"event"'):
            mark = json.loads(raw)["event"]
            marks[mark] = (time.perf_counter(), server.cpu(), core_times())
            on_mark(mark)
    await process.wait()
    if process.returncode != 0 or not line.startswith(b"{"):
        raise RuntimeError(f"loadgen failed: {b''.join(errors).decode(errors='replace')[-800:]}")
    result: dict[str, Any] = json.loads(line)
    if "window_start" in marks and "window_end" in marks:
        t0, c0, k0 = marks["window_start"]
        t1, c1, k1 = marks["window_end"]
        result["server_cpu_pct"] = 100.0 * (c1 - c0) / (t1 - t0)
        busy = core_busy(k0, k1)
        result["core0_busy_pct"] = busy.get("cpu0")
        result["core1_busy_pct"] = busy.get("cpu1")
    return result


@contextlib.asynccontextmanager
async def idle_chargers(
    server: Server, connections: int, concurrency: int, prefix: str, *, basic_key_seed: str = ""
) -> AsyncIterator[dict[str, Any]]:
    """Connect and boot `connections` chargers and keep them until the block ends; with
    `basic_key_seed`, each presents its AuthorizationKey (security profile 1, see
    `authorization_key`)."""
    command = [
        "node",
        LOADGEN,
        "--mode",
        "idle",
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--connections",
        str(connections),
        "--connect-concurrency",
        str(concurrency),
        "--prefix",
        prefix,
        "--setup-timeout",
        "300",
        *(["--basic-key-seed", basic_key_seed] if basic_key_seed else []),
    ]
    process = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdin is not None
    errors: list[bytes] = []
    drain_in_background(process.stderr, errors)
    line = await process.stdout.readline()
    if not line.startswith(b"{"):
        await process.wait()
        raise RuntimeError(f"loadgen failed: {b''.join(errors).decode(errors='replace')[-800:]}")
    try:
        yield json.loads(line)
    finally:
        process.stdin.close()
        await process.wait()


def authorization_key(seed: str, identity: str) -> str:
    """The AuthorizationKey (40 hex digits) loadgen.js presents for `identity` with
    --basic-key-seed `seed`."""
    return hashlib.sha256((seed + identity).encode()).digest()[:20].hex()


async def command_client(
    server: Server, connections: int, commands: int, prefix: str
) -> dict[str, Any]:
    """Idle chargers that answer commands, and `commands` HTTP commands one after the other."""
    command = [
        "node",
        LOADGEN,
        "--mode",
        "idle",
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--connections",
        str(connections),
        "--prefix",
        prefix,
        *command_options(server, commands),
    ]
    out = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    stdout, _ = await out.communicate()
    result: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    return result


def command_options(server: Server, commands: int) -> list[str]:
    """loadgen.js options for HTTP GetConfiguration commands, 5 ms apart, to its chargers."""
    url = (
        f"http://127.0.0.1:{server.api_port}/api/v1/charge-points/{{id}}/commands/GetConfiguration"
    )
    return ["--command-url", url, "--commands", str(commands), "--command-interval-ms", "5"]
