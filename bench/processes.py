"""The processes of a bench run: pinning, /proc figures, servers under test and databases.

The server under test runs on core 0; the load generator, this runner and py-spy on
core 1 (see `pinned`). The load generator itself is in loadgen.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from report import progress

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
SERVERS = BENCH / "servers"
PYTHON = sys.executable
CSMS = [PYTHON, "-m", "csms", "serve"]
SERVER_CORE, GENERATOR_CORE = "0", "1"
PG_HOST = "127.0.0.1"
MQTT_URL = "mqtt://127.0.0.1:1883"

# name -> (label in the report, command); each prints "listening" once it accepts.
REFERENCES = {
    "csms": ("csms (protocol path)", [PYTHON, str(SERVERS / "csms_protocol.py")]),
    "csms-picows": (
        "csms picows (protocol path)",
        [PYTHON, str(SERVERS / "csms_protocol.py"), "--transport", "picows"],
    ),
    "raw-websockets": ("raw websockets+orjson", [PYTHON, str(SERVERS / "raw_websockets.py")]),
    "raw-picows": ("raw picows+orjson", [PYTHON, str(SERVERS / "raw_picows.py")]),
    "ocpp-chargepoint": ("ocpp ChargePoint", [PYTHON, str(SERVERS / "ocpp_chargepoint.py")]),
    "ocpp-rpc": ("ocpp-rpc strict (Node)", ["node", str(NODE_DIR / "ocpp_rpc_server.js")]),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(core: str, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *command]
    return command


# -- process figures from /proc ----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")

CoreTimes = dict[str, tuple[int, int]]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (seconds)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def listen_overflows() -> int:
    """The kernel's TcpExt ListenOverflows: SYNs dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def core_times() -> CoreTimes:
    """(busy, total) jiffies per cpuN from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            out[name] = (sum(numbers) - idle, sum(numbers))
    return out


def core_busy(before: CoreTimes, after: CoreTimes) -> dict[str, float]:
    busy = {}
    for name, (b1, t1) in after.items():
        b0, t0 = before.get(name, (0, 0))
        busy[name] = 100.0 * (b1 - b0) / max(1, t1 - t0)
    return busy


# -- output of child processes -------------------------------------------------------------------

_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader, sink: list[bytes]) -> None:
    while line := await stream.readline():
        if len(sink) < 200:
            sink.append(line)


def drain_in_background(stream: asyncio.StreamReader, sink: list[bytes] | None = None) -> None:
    """Keep reading a child's pipe (a full pipe would stall it); its first lines go to `sink`."""
    _DRAINS.add(asyncio.create_task(_drain(stream, [] if sink is None else sink)))


def cancel_drains() -> None:
    for task in _DRAINS:
        task.cancel()


async def _wait_for(stream: asyncio.StreamReader, marker: bytes, what: str, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while marker not in (line := await stream.readline()):
            if not line:
                raise RuntimeError(f"{what} exited before it was ready")


async def start_csms(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`csms serve` on the server core with this environment, once it has logged
    `csms_ready`; its log is drained from then on (bench/events.py, bench/webhooks.py)."""
    process = await asyncio.create_subprocess_exec(
        *pinned(SERVER_CORE, CSMS), env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    while b'"csms_ready"' not in (line := await process.stderr.readline()):
        if not line:
            raise SystemExit("csms exited before it was ready")
    drain_in_background(process.stderr)
    return process


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    """A server under test, and the other processes whose CPU counts as its own."""

    process: asyncio.subprocess.Process
    port: int
    api_port: int = 0
    extra_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid) + sum(cpu_seconds(p) for p in self.extra_pids)


@contextlib.asynccontextmanager
async def reference_server(name: str) -> AsyncIterator[Server]:
    """One of REFERENCES on a free port, pinned to the server's core, until the block ends."""
    port = free_port()
    command = pinned(SERVER_CORE, [*REFERENCES[name][1], "--port", str(port)])
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[bytes] = []
    drain_in_background(process.stderr, errors)
    try:
        await _wait_for(process.stdout, b"listening", name, 60)
        drain_in_background(process.stdout)
        yield Server(process, port)
    finally:
        await stop(process)
        if errors:
            progress(f"{name} stderr: {b''.join(errors[:5]).decode(errors='replace')[:500]}")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


# -- databases -----------------------------------------------------------------------------------


@dataclass
class Database:
    """A fresh database for one csms run: its URL, and counting what csms left in it."""

    url: str
    kind: str
    pg_name: str = ""
    # Backends of our own observers (the outbox watcher): not csms's, so neither pinned nor
    # counted as its CPU.
    observer_pids: set[int] = field(default_factory=set)

    @property
    def sqlite_path(self) -> str:
        return self.url.split("///", 1)[1]

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://postgres@{PG_HOST}/{self.pg_name}"

    def count(self, sql: str) -> int:
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as db:
                return int(db.execute(sql).fetchone()[0])
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-U", "postgres", "-d", self.pg_name, "-Atc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout.strip())

    def count_by(self, sql: str) -> dict[str, int]:
        """A `select key, count(*) ... group by key` query as {key: count}."""
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.sqlite_path)) as db:
                return {str(k): int(n) for k, n in db.execute(sql).fetchall()}
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-U", "postgres", "-d", self.pg_name, "-Atc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        pairs = (line.rsplit("|", 1) for line in out.stdout.splitlines() if line)
        return {k: int(n) for k, n in pairs}

    def backend_pids(self) -> list[int]:
        if self.kind != "postgresql":
            return []
        sql = f"select pid from pg_stat_activity where datname = '{self.pg_name}'"
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-U", "postgres", "-d", "postgres", "-Atc", sql],
            capture_output=True,
            text=True,
        )
        return [int(p) for p in out.stdout.split() if int(p) not in self.observer_pids]


@contextlib.contextmanager
def fresh_database(kind: str, scratch: Path) -> Iterator[Database]:
    """A new SQLite file in `scratch` or a new PostgreSQL database, removed afterwards."""
    if kind == "sqlite":
        path = scratch / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield Database(f"sqlite+aiosqlite:///{path}", kind)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["createdb", "-h", PG_HOST, "-U", "postgres", name], check=True)
    try:
        yield Database(f"postgresql+asyncpg://postgres@{PG_HOST}/{name}", kind, name)
    finally:
        subprocess.run(
            ["dropdb", "-h", PG_HOST, "-U", "postgres", "--force", name],
            check=False,
            capture_output=True,
        )


def pin_backends(database: Database, server: Server) -> None:
    """PostgreSQL's backends for our database belong to the server under test: core 0."""
    for pid in database.backend_pids():
        if pid not in server.extra_pids:
            subprocess.run(["taskset", "-p", "-c", SERVER_CORE, str(pid)], capture_output=True)
            server.extra_pids.append(pid)


# -- csms serve ----------------------------------------------------------------------------------


async def _wait_healthy(process: asyncio.subprocess.Process, api_port: int) -> None:
    """csms logs at warning level here, so readiness is its /health answering 200."""
    url = f"http://127.0.0.1:{api_port}/api/v1/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"csms exited {process.returncode} before it was ready")
        try:
            status = await asyncio.to_thread(_http_status, url)
        except OSError:
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("csms did not become ready in 120 s")


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status)


@contextlib.asynccontextmanager
async def csms_server(database: Database, scratch: Path, **env_extra: str) -> AsyncIterator[Server]:
    """`csms serve` on `database` with Mosquitto, pinned to the server's core."""
    port, api_port = free_port(), free_port()
    config = scratch / "bench-config.toml"
    config.write_text("# make bench: everything else comes from CSMS_* variables\n")
    env = {
        **os.environ,
        "CSMS_DATABASE__URL": database.url,
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(port),
        "CSMS_API__HOST": "127.0.0.1",
        "CSMS_API__PORT": str(api_port),
        "CSMS_MQTT__URL": MQTT_URL,
        "CSMS_MQTT__TOPIC_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
        "CSMS_MQTT__EMBEDDED": "true",
        "CSMS_LOG__LEVEL": "warning",
        "CSMS_LOG__FORMAT": "json",
        **env_extra,
    }
    command = pinned(SERVER_CORE, [*CSMS, "--config", str(config)])
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=scratch,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert process.stderr is not None
    errors: list[bytes] = []
    drain_in_background(process.stderr, errors)
    try:
        await _wait_healthy(process, api_port)
        server = Server(process, port, api_port)
        pin_backends(database, server)
        yield server
    finally:
        await stop(process)
        if process.returncode not in (0, -signal.SIGTERM):
            progress(f"csms exited {process.returncode}: {b''.join(errors[-5:]).decode()[:800]}")
