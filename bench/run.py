"""`make bench`: csms's capacity figures beside three references, on one machine.

    python bench/run.py [--quick] [--only P1,P3] [--repeats 3] [--duration 8]

The server under test runs pinned to core 0 (`taskset -c 0`), the load generator (Node +
`ws`, bench/node/loadgen.js) and this runner on core 1, over loopback. Every scenario is
repeated (--repeats) and reported as median [min-max]; a result whose generator used more
than 80 % of its core is marked invalid. Progress goes to stderr, the markdown table to
stdout, and the whole report to docs/performance.md (--output). See docs/performance.md.

Scenarios (--only): P1 protocol path, P2 full path (SQLite and PostgreSQL), P3 connections
(RSS per idle charger, boot storm), P4 command round-trip, P5 events, PROFILE (py-spy).
--quick: P1 at 100 connections for csms and both raw ceilings, P2 SQLite at 100, P4 idle
and P5 latency, 1 repeat of 5 s each: about 2 minutes, figures only roughly comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
SERVERS = BENCH / "servers"
PYTHON = sys.executable
CSMS = [PYTHON, "-m", "csms", "serve"]
SERVER_CORE, GENERATOR_CORE = "0", "1"
GENERATOR_LIMIT = 80.0  # % of the generator's core above which a result is invalid
PG_HOST = "127.0.0.1"
MQTT_URL = "mqtt://127.0.0.1:1883"

REFERENCES = {
    "csms": ("csms (protocol path)", [PYTHON, str(SERVERS / "csms_protocol.py")]),
    "raw-websockets": ("raw websockets+orjson", [PYTHON, str(SERVERS / "raw_websockets.py")]),
    "raw-picows": ("raw picows+orjson", [PYTHON, str(SERVERS / "raw_picows.py")]),
    "ocpp-chargepoint": ("ocpp ChargePoint", [PYTHON, str(SERVERS / "ocpp_chargepoint.py")]),
    "ocpp-rpc": ("ocpp-rpc strict (Node)", ["node", str(NODE_DIR / "ocpp_rpc_server.js")]),
}


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per cpuN from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            out[name] = (sum(numbers) - idle, sum(numbers))
    return out


def core_busy(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict:
    busy = {}
    for name, (b1, t1) in after.items():
        b0, t0 = before.get(name, (0, 0))
        busy[name] = 100.0 * (b1 - b0) / max(1, t1 - t0)
    return busy


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    process: asyncio.subprocess.Process
    port: int
    api_port: int = 0
    extra_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid) + sum(cpu_seconds(p) for p in self.extra_pids)


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader, sink: list[bytes]) -> None:
    while line := await stream.readline():
        if len(sink) < 200:
            sink.append(line)


async def _wait_for(stream: asyncio.StreamReader, marker: bytes, what: str, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while marker not in (line := await stream.readline()):
            if not line:
                raise RuntimeError(f"{what} exited before it was ready")


@contextlib.asynccontextmanager
async def reference_server(name: str) -> AsyncIterator[Server]:
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
    _DRAINS.add(asyncio.create_task(_drain(process.stderr, errors)))
    try:
        await _wait_for(process.stdout, b"listening", name, 60)
        _DRAINS.add(asyncio.create_task(_drain(process.stdout, [])))
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


@dataclass
class Database:
    url: str
    kind: str
    pg_name: str = ""

    def count(self, sql: str) -> int:
        if self.kind == "sqlite":
            path = self.url.split("///", 1)[1]
            with contextlib.closing(sqlite3.connect(path)) as db:
                return int(db.execute(sql).fetchone()[0])
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-U", "postgres", "-d", self.pg_name, "-Atc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout.strip())

    def backend_pids(self) -> list[int]:
        if self.kind != "postgresql":
            return []
        sql = f"select pid from pg_stat_activity where datname = '{self.pg_name}'"
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-U", "postgres", "-d", "postgres", "-Atc", sql],
            capture_output=True,
            text=True,
        )
        return [int(p) for p in out.stdout.split()]


@contextlib.contextmanager
def fresh_database(kind: str, scratch: Path):
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
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status)


@contextlib.asynccontextmanager
async def csms_server(database: Database, scratch: Path, **env_extra: str) -> AsyncIterator[Server]:
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
    _DRAINS.add(asyncio.create_task(_drain(process.stderr, errors)))
    try:
        await _wait_healthy(process, api_port)
        server = Server(process, port, api_port)
        pin_backends(database, server)
        yield server
    finally:
        await stop(process)
        if process.returncode not in (0, -signal.SIGTERM):
            progress(f"csms exited {process.returncode}: {b''.join(errors[-5:]).decode()[:800]}")


# -- the load generator --------------------------------------------------------------------------


async def loadgen(
    server: Server,
    *,
    connections: int,
    duration: float,
    warmup: float,
    extra: list[str] | None = None,
    on_window: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run bench/node/loadgen.js in load mode; the result, with the server's CPU over the window."""
    command = [
        "node",
        str(NODE_DIR / "loadgen.js"),
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
    process = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[bytes] = []
    _DRAINS.add(asyncio.create_task(_drain(process.stderr, errors)))
    line = b""
    marks: dict[str, tuple[float, float, dict]] = {}
    while raw := await process.stdout.readline():
        line = raw
        if raw.startswith(b'{"event"'):
            mark = json.loads(raw)["event"]
            marks[mark] = (time.perf_counter(), server.cpu(), core_times())
            if mark == "window_start" and on_window is not None:
                on_window()
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
    server: Server, connections: int, concurrency: int, prefix: str
) -> AsyncIterator[dict[str, Any]]:
    """Connect and boot `connections` chargers and keep them until the block ends."""
    command = [
        "node",
        str(NODE_DIR / "loadgen.js"),
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
    _DRAINS.add(asyncio.create_task(_drain(process.stderr, errors)))
    line = await process.stdout.readline()
    if not line.startswith(b"{"):
        await process.wait()
        raise RuntimeError(f"loadgen failed: {b''.join(errors).decode(errors='replace')[-800:]}")
    try:
        yield json.loads(line)
    finally:
        process.stdin.close()
        await process.wait()


async def command_client(
    server: Server, connections: int, commands: int, prefix: str
) -> dict[str, Any]:
    """Idle chargers that answer commands, and `commands` HTTP commands one after the other."""
    command = [
        "node",
        str(NODE_DIR / "loadgen.js"),
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
    return json.loads(stdout.splitlines()[-1])


def command_options(server: Server, commands: int) -> list[str]:
    url = (
        f"http://127.0.0.1:{server.api_port}/api/v1/charge-points/{{id}}/commands/GetConfiguration"
    )
    return ["--command-url", url, "--commands", str(commands), "--command-interval-ms", "5"]


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    system: str
    setting: str
    metric: str
    unit: str
    values: list[float]
    generator_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    note: str = ""
    higher_is_better: bool = True
    core0_busy: list[float] = field(default_factory=list)  # the server's core, all processes

    @property
    def valid(self) -> bool:
        return all(c <= GENERATOR_LIMIT for c in self.generator_cpu)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        progress(f"  -> {row.system} {row.setting} {row.metric}: {fmt_values(row)}")
        return row

    def find(self, scenario: str, system: str, setting: str, metric: str) -> Row | None:
        for row in self.rows:
            if (row.scenario, row.system, row.setting, row.metric) == (
                scenario,
                system,
                setting,
                metric,
            ):
                return row
        return None


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("calls/s", "events/s"):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def fmt_values(row: Row) -> str:
    if not row.values:
        return "-"
    if len(row.values) == 1:
        return fmt(row.values[0], row.unit)
    low, high = fmt(min(row.values), row.unit), fmt(max(row.values), row.unit)
    return f"{fmt(row.median, row.unit)} [{low}-{high}]"


def fmt_cpu(values: list[float]) -> str:
    return f"{max(values):.0f} %" if values else "-"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | system | setting | metric | median [min-max] | gen. CPU (max) "
        "| server CPU | valid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        valid = "yes" if r.valid else "**INVALID** (generator > 80 %)"
        metric = f"{r.metric} ({r.unit})" if r.unit else r.metric
        note = f" {r.note}" if r.note else ""
        lines.append(
            f"| {r.scenario} | {r.system} | {r.setting} | {metric} | {fmt_values(r)}{note} "
            f"| {fmt_cpu(r.generator_cpu)} | {fmt_cpu(r.server_cpu)} | {valid} |"
        )
    return "\n".join(lines)


# -- scenarios -----------------------------------------------------------------------------------


@dataclass
class Options:
    repeats: int
    duration: float
    warmup: float
    quick: bool
    scratch: Path


def load_rows(
    report: Report, scenario: str, system: str, setting: str, runs: list[dict[str, Any]]
) -> None:
    gen = [r["cpu_pct"] for r in runs]
    srv = [r.get("server_cpu_pct", 0.0) for r in runs]
    errors = sum(sum(r["errors"].values()) + r["timeouts"] for r in runs)
    note = f"({errors} errors)" if errors else ""
    for metric, key, unit, higher in (
        ("throughput", "calls_per_s", "calls/s", True),
        ("latency p50", "p50_ms", "ms", False),
        ("latency p99", "p99_ms", "ms", False),
    ):
        report.add(
            Row(
                scenario,
                system,
                setting,
                metric,
                unit,
                [r[key] for r in runs if r[key] is not None],
                gen,
                srv,
                note if key == "calls_per_s" else "",
                higher,
                [r["core0_busy_pct"] for r in runs if r.get("core0_busy_pct") is not None],
            )
        )


async def p1(report: Report, opts: Options) -> None:
    progress("P1 protocol path: csms beside the references, no storage")
    names = (
        ["csms", "raw-websockets", "raw-picows"]
        if opts.quick
        else ["csms", "raw-websockets", "raw-picows", "ocpp-chargepoint", "ocpp-rpc"]
    )
    sizes = [100] if opts.quick else [100, 1000]
    for name in names:
        async with reference_server(name) as server:
            for connections in sizes:
                runs = []
                for n in range(opts.repeats):
                    progress(f"P1 {name} {connections} connections, run {n + 1}/{opts.repeats}")
                    runs.append(
                        await loadgen(
                            server,
                            connections=connections,
                            duration=opts.duration,
                            warmup=opts.warmup,
                        )
                    )
                load_rows(report, "P1", REFERENCES[name][0], f"{connections} conn.", runs)


async def p2_run(
    opts: Options, kind: str, connections: int, *, profile: Path | None = None
) -> dict[str, Any]:
    with fresh_database(kind, opts.scratch) as database:
        async with csms_server(database, opts.scratch) as server:
            spy: list[asyncio.Task[None]] = []

            def window() -> None:
                pin_backends(database, server)
                if profile is not None:
                    spy.append(asyncio.create_task(py_spy(server.pid, profile, opts.duration)))

            run = await loadgen(
                server,
                connections=connections,
                duration=opts.duration,
                warmup=opts.warmup,
                extra=["--start-tx"],
                on_window=window,
            )
            for task in spy:
                await task
        # csms stopped: every acknowledged write is committed. Count what is there.
        samples = run["meter_values_acked"] * run["samples_per_meter_values"]
        rows = database.count("select count(*) from meter_values")
        events = database.count(
            "select count(*) from outbox_events where type in ('meter.values', 'session.updated')"
        )
        run["rows"] = rows
        run["rows_expected"] = samples
        run["events"] = events
        run["events_expected"] = 2 * run["meter_values_acked"]
        run["lost"] = max(0, samples - rows) + max(0, run["events_expected"] - events)
    return run


async def py_spy(pid: int, output: Path, seconds: float) -> None:
    """Sample the server with py-spy for `seconds` (from core 1, nonblocking)."""
    command = [
        str(Path(PYTHON).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(output),
        "--nonblocking",
    ]
    process = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        progress(f"py-spy failed: {err.decode(errors='replace')[-300:]}")


async def p2(report: Report, opts: Options) -> None:
    progress("P2 full path: csms serve with storage and events (group commit, outbox)")
    kinds = ["sqlite"] if opts.quick else ["sqlite", "postgresql"]
    sizes = [100] if opts.quick else [100, 1000]
    for kind in kinds:
        for connections in sizes:
            runs = []
            for n in range(opts.repeats):
                progress(f"P2 {kind} {connections} connections, run {n + 1}/{opts.repeats}")
                runs.append(await p2_run(opts, kind, connections))
            lost = sum(r["lost"] for r in runs)
            load_rows(report, "P2", f"csms + {kind}", f"{connections} conn.", runs)
            report.add(
                Row(
                    "P2",
                    f"csms + {kind}",
                    f"{connections} conn.",
                    "lost (rows + events)",
                    "",
                    [float(r["lost"]) for r in runs],
                    note=f"of {sum(r['rows_expected'] + r['events_expected'] for r in runs):,}",
                    higher_is_better=False,
                )
            )
            if lost:
                report.notes.append(f"P2 {kind} {connections}: {lost} rows/events missing")


async def p3(report: Report, opts: Options) -> None:
    progress("P3 connections: RSS per idle booted charger, and a boot storm")
    sizes = [1000] if opts.quick else [5000, 20000]
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if max(sizes) + 1000 > fd_limit:
        # The server needs a descriptor per charger plus its own (database, broker, logs).
        sizes = [min(size, fd_limit - 1000) for size in sizes]
        report.notes.append(
            f"P3: the file-descriptor limit is {fd_limit} and cannot be raised here "
            f"(no CAP_SYS_RESOURCE), so the largest run has {max(sizes):,} connections"
        )
    for connections in sizes:
        values, setup = [], []
        for n in range(opts.repeats):
            progress(f"P3 RSS {connections} idle chargers, run {n + 1}/{opts.repeats}")
            with fresh_database("sqlite", opts.scratch) as database:
                async with csms_server(database, opts.scratch) as server:
                    # Warm up code paths and caches once, so they do not count per connection.
                    async with idle_chargers(server, 200, 200, f"W{n}-"):
                        pass
                    await asyncio.sleep(1)
                    before = rss_bytes(server.pid)
                    async with idle_chargers(
                        server, connections, 500, f"I{uuid.uuid4().hex[:5]}-"
                    ) as ready:
                        await asyncio.sleep(3)
                        after = rss_bytes(server.pid)
            if ready["booted"] < connections:
                report.notes.append(
                    f"P3 {connections}: only {ready['booted']} booted ({ready['failure_reasons']})"
                )
            values.append((after - before) / max(1, ready["booted"]) / 1024)
            setup.append(ready["setup_s"])
        report.add(
            Row(
                "P3",
                "csms + sqlite",
                f"{connections:,} idle",
                "RSS per booted charger",
                "KiB",
                values,
                higher_is_better=False,
                note=f"(connect+boot {statistics.median(setup):.1f} s, 500 at a time)",
            )
        )
    storm = 2000 if opts.quick else 10000
    times, failures = [], []
    for n in range(opts.repeats):
        progress(f"P3 boot storm: {storm} chargers at once, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            overflows_before = listen_overflows()
            async with (
                csms_server(database, opts.scratch) as server,
                idle_chargers(server, storm, 0, f"S{uuid.uuid4().hex[:5]}-") as ready,
            ):
                times.append(ready["setup_s"])
                failures.append(float(ready["setup_failures"]))
                overflows = listen_overflows() - overflows_before
                report.notes.append(
                    f"P3 storm run {n + 1}: {ready['booted']:,} booted in "
                    f"{ready['setup_s']:.1f} s, failures {ready['failure_reasons'] or 0}; "
                    "the kernel dropped "
                    f"{overflows:,} SYNs on full accept queues (ListenOverflows) meanwhile"
                )
    report.add(
        Row(
            "P3",
            "csms + sqlite",
            f"{storm:,} at once",
            "boot storm, all accepted",
            "s",
            times,
            higher_is_better=False,
        )
    )
    report.add(
        Row(
            "P3",
            "csms + sqlite",
            f"{storm:,} at once",
            "boot storm failures",
            "",
            failures,
            higher_is_better=False,
        )
    )


async def p4(report: Report, opts: Options) -> None:
    progress("P4 command round-trip: HTTP -> charger -> HTTP")
    commands = 200 if opts.quick else 500
    idle: list[dict[str, Any]] = []
    for n in range(opts.repeats):
        progress(f"P4 idle, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(database, opts.scratch) as server:
                result = await command_client(server, 100, commands, f"C{uuid.uuid4().hex[:5]}-")
                idle.append(result["commands"] | {"cpu": result.get("cpu_pct", 0.0)})
    add_command_rows(report, "idle (100 chargers)", idle, [r["cpu"] for r in idle])
    if opts.quick:
        return
    p2_rate = report.find("P2", "csms + sqlite", "100 conn.", "throughput")
    if p2_rate is None or p2_rate.median is None:
        progress("P4 needs the P2 SQLite rate: measuring it once")
        probe = await p2_run(opts, "sqlite", 100)
        rate = probe["calls_per_s"]
    else:
        rate = p2_rate.median
    target = max(100, int(rate * 0.5))
    loaded: list[dict[str, Any]] = []
    for n in range(opts.repeats):
        progress(f"P4 at 50 % of P2 ({target:,} calls/s), run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(database, opts.scratch) as server:
                run = await loadgen(
                    server,
                    connections=100,
                    duration=opts.duration,
                    warmup=opts.warmup,
                    extra=["--start-tx", "--rate", str(target), *command_options(server, commands)],
                )
                run["commands"]["load"] = run["calls_per_s"]
                loaded.append(run["commands"] | {"cpu": run["cpu_pct"]})
    add_command_rows(
        report,
        f"at {target:,} calls/s (50 % of P2)",
        loaded,
        [r["cpu"] for r in loaded],
    )


def add_command_rows(
    report: Report, setting: str, runs: list[dict[str, Any]], gen_cpu: list[float]
) -> None:
    bad = sum(n for r in runs for status, n in r["statuses"].items() if status != "200")
    for metric, key in (("command p50", "p50_ms"), ("command p99", "p99_ms")):
        report.add(
            Row(
                "P4",
                "csms + sqlite",
                setting,
                metric,
                "ms",
                [r[key] for r in runs if r[key] is not None],
                gen_cpu,
                note=f"({bad} failed)" if bad else "",
                higher_is_better=False,
            )
        )


async def p5(report: Report, opts: Options) -> None:
    progress("P5 events: OCPP -> MQTT latency and outbox drain (Mosquitto)")
    sys.path.insert(0, str(BENCH))
    import events  # bench/events.py

    if not await is_listening_mqtt():
        report.notes.append("P5 skipped: no MQTT broker on 127.0.0.1:1883 (start Mosquitto)")
        return
    messages = 500 if opts.quick else 2000
    latencies: list[dict[str, float]] = []
    drains: list[dict[str, float]] = []
    backlog = 100_000
    for n in range(opts.repeats):
        progress(f"P5 latency ({messages} MeterValues), run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            env = events_env(database)
            latencies.append(await events.latency(env, messages, env["CSMS_MQTT__TOPIC_PREFIX"]))
    report.add(
        Row(
            "P5",
            "csms + sqlite",
            "1 charger, one at a time",
            "OCPP -> MQTT p50",
            "ms",
            [r["p50_ms"] for r in latencies],
            higher_is_better=False,
        )
    )
    report.add(
        Row(
            "P5",
            "csms + sqlite",
            "1 charger, one at a time",
            "OCPP -> MQTT p99",
            "ms",
            [r["p99_ms"] for r in latencies],
            higher_is_better=False,
        )
    )
    if opts.quick:
        return
    for n in range(opts.repeats):
        progress(f"P5 drain of {backlog:,} events, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            env = events_env(database)
            await events.fill_outbox(database.url, backlog)
            drains.append(
                await events.drain(database.url, env, backlog, env["CSMS_MQTT__TOPIC_PREFIX"])
            )
    report.add(
        Row(
            "P5",
            "csms + sqlite",
            f"backlog {backlog:,}",
            "outbox drain",
            "events/s",
            [r["events_per_s"] for r in drains],
            [r["subscriber_cpu_pct"] for r in drains],
        )
    )


def events_env(database: Database) -> dict[str, str]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "CSMS_DATABASE__URL": database.url,
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_API__PORT": str(free_port()),
        "CSMS_MQTT__URL": MQTT_URL,
        "CSMS_MQTT__TOPIC_PREFIX": prefix,
        "CSMS_MQTT__EMBEDDED": "false",
        "CSMS_LOG__FORMAT": "json",
    }


async def is_listening_mqtt() -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 1883), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


# -- profile -------------------------------------------------------------------------------------

CATEGORIES = [
    # (category, substrings of a frame's file as py-spy prints it, e.g. "websockets/frames.py");
    # the innermost frame that matches decides.
    (
        "storage",
        ("sqlalchemy/", "aiosqlite/", "asyncpg/", "sqlite3/", "csms/store/", "sqlmodel/"),
    ),
    ("events", ("csms/events/", "pydantic", "aiomqtt/", "paho/", "amqtt/")),
    ("WebSocket layer", ("websockets/", "picows/")),
    (
        "parsing + validation",
        ("csms/ocpp16/rpc.py", "csms/ocpp16/schemas.py", "jsonschema", "orjson"),
    ),
    (
        "handlers",
        (
            "csms/ocpp16/handlers.py",
            "csms/core/",
            "csms/ocpp16/connection.py",
            "csms_protocol.py",
            "csms/ocpp16/server.py",
        ),
    ),
    ("logging", ("structlog/", "logging/")),
    ("HTTP API", ("uvicorn/", "fastapi/", "starlette/", "csms/api/")),
]
OTHER = "event loop, I/O and other"


def classify(stack: str) -> str:
    frames = stack.split(";")
    # Frames outside the event loop (the script's <module>, asyncio.run) say nothing.
    for index in range(len(frames) - 1, -1, -1):
        if "asyncio/runners.py" in frames[index]:
            frames = frames[index + 1 :]
            break
    for frame in reversed(frames):
        for category, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return category
    return OTHER


def breakdown(raw: Path) -> dict[str, float]:
    counts: Counter[str] = Counter()
    if not raw.exists():
        return {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[classify(stack)] += int(count)
    total = sum(counts.values()) or 1
    return {category: 100.0 * n / total for category, n in counts.most_common()}


async def profile(report: Report, opts: Options) -> None:
    progress("PROFILE: py-spy on csms under load, CPU time by layer")
    async with reference_server("csms") as server:
        out = opts.scratch / "p1.raw"

        spy: list[asyncio.Task[None]] = []

        def window() -> None:
            spy.append(asyncio.create_task(py_spy(server.pid, out, opts.duration)))

        await loadgen(
            server, connections=100, duration=opts.duration, warmup=opts.warmup, on_window=window
        )
        for task in spy:
            await task
        report.profiles["P1 csms protocol path, 100 conn."] = breakdown(out)
    kinds = ["sqlite"] if opts.quick else ["sqlite", "postgresql"]
    for kind in kinds:
        out = opts.scratch / f"p2-{kind}.raw"
        await p2_run(opts, kind, 100, profile=out)
        report.profiles[f"P2 csms + {kind}, 100 conn."] = breakdown(out)
    for name, shares in report.profiles.items():
        progress(f"  {name}: " + ", ".join(f"{k} {v:.0f} %" for k, v in shares.items()))


# -- ratios, targets and the report ------------------------------------------------------------


def ratio(
    report: Report, a: tuple[str, str, str, str], b: tuple[str, str, str, str]
) -> float | None:
    ra, rb = report.find(*a), report.find(*b)
    if ra is None or rb is None or not ra.median or not rb.median:
        return None
    return ra.median / rb.median


def targets(report: Report) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, reference, met) for every target of the benchmarks issue."""
    out: list[tuple[str, str, str, bool | None]] = []

    def med(*key: str) -> float | None:
        row = report.find(*key)
        return row.median if row is not None else None

    def check(name: str, value: float | None, shown: str, good: Callable[[float], bool]) -> None:
        out.append(
            (
                name,
                shown if value is not None else "not run",
                "",
                None if value is None else good(value),
            )
        )

    for conns in ("100 conn.", "1000 conn."):
        r = ratio(
            report,
            ("P1", "csms (protocol path)", conns, "throughput"),
            ("P1", "ocpp-rpc strict (Node)", conns, "throughput"),
        )
        check(f"P1 {conns}: csms >= 1.1x ocpp-rpc strict", r, f"{r or 0:.2f}x", lambda v: v >= 1.1)
        r = ratio(
            report,
            ("P1", "csms (protocol path)", conns, "throughput"),
            ("P1", "raw websockets+orjson", conns, "throughput"),
        )
        check(
            f"P1 {conns}: csms >= 0.9x raw websockets ceiling",
            r,
            f"{r or 0:.2f}x",
            lambda v: v >= 0.9,
        )
        r = ratio(
            report,
            ("P1", "csms (protocol path)", conns, "throughput"),
            ("P1", "raw picows+orjson", conns, "throughput"),
        )
        if r is not None:
            out.append((f"P1 {conns}: csms vs raw picows (information)", f"{r:.2f}x", "", None))
        for kind in ("sqlite", "postgresql"):
            r = ratio(
                report,
                ("P2", f"csms + {kind}", conns, "throughput"),
                ("P1", "raw websockets+orjson", conns, "throughput"),
            )
            check(
                f"P2 {conns} {kind}: >= 0.5x raw websockets ceiling",
                r,
                f"{r or 0:.2f}x",
                lambda v: v >= 0.5,
            )
            lost = report.find("P2", f"csms + {kind}", conns, "lost (rows + events)")
            if lost is not None:
                check(
                    f"P2 {conns} {kind}: nothing lost",
                    sum(lost.values),
                    f"{sum(lost.values):.0f} missing",
                    lambda v: v == 0,
                )
    for row in report.rows:
        if row.metric == "RSS per booted charger":
            v = row.median
            check(
                f"P3 {row.setting}: <= 24 KiB per connection",
                v,
                f"{v or 0:.1f} KiB",
                lambda x: x <= 24,
            )
    v = med("P3", "csms + sqlite", "10,000 at once", "boot storm, all accepted")
    f = report.find("P3", "csms + sqlite", "10,000 at once", "boot storm failures")
    check("P3 boot storm 10,000 < 30 s", v, f"{v or 0:.1f} s", lambda x: x < 30)
    if f is not None:
        check("P3 boot storm 0 failures", max(f.values), f"{max(f.values):.0f}", lambda x: x == 0)
    v = med("P4", "csms + sqlite", "idle (100 chargers)", "command p99")
    check("P4 idle p99 < 10 ms", v, f"{v or 0:.1f} ms", lambda x: x < 10)
    loaded = [
        r
        for r in report.rows
        if r.scenario == "P4" and r.setting.startswith("at ") and r.metric == "command p99"
    ]
    v = loaded[0].median if loaded else None
    check("P4 at 50 % load p99 < 50 ms", v, f"{v or 0:.1f} ms", lambda x: x < 50)
    v = med("P5", "csms + sqlite", "1 charger, one at a time", "OCPP -> MQTT p99")
    check("P5 OCPP -> MQTT p99 < 100 ms", v, f"{v or 0:.1f} ms", lambda x: x < 100)
    v = med("P5", "csms + sqlite", "backlog 100,000", "outbox drain")
    check("P5 drain >= 10,000 events/s", v, f"{v or 0:,.0f} events/s", lambda x: x >= 10_000)
    return out


def limits(report: Report) -> list[str]:
    """What bounds each throughput figure, read off the CPU measurements."""
    lines = []
    for r in report.rows:
        if r.metric != "throughput" or not r.values:
            continue
        srv = max(r.server_cpu) if r.server_cpu else 0
        core = max(r.core0_busy) if r.core0_busy else srv
        if not r.valid:
            why = f"the generator ({max(r.generator_cpu):.0f} % of core 1): a lower bound only"
        elif srv >= 90:
            why = f"the server's core ({srv:.0f} % of core 0 busy with it)"
        elif core >= 90:
            why = (
                f"the server's core: core 0 {core:.0f} % busy, {srv:.0f} % of it the server, "
                "the rest other processes (the machine was not quiet: noisy figure)"
            )
        else:
            why = (
                f"not CPU (server {srv:.0f} %, generator {max(r.generator_cpu):.0f} %): "
                "waits, e.g. commits or the broker"
            )
        lines.append(
            f"- {r.scenario} {r.system}, {r.setting}: {fmt(r.median, r.unit)} calls/s, "
            f"bounded by {why}."
        )
    return lines


def run_text(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> list[str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    lscpu = {}
    for line in run_text(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    versions = []
    for package in (
        "websockets",
        "picows",
        "uvloop",
        "orjson",
        "jsonschema-rs",
        "ocpp",
        "sqlalchemy",
        "asyncpg",
        "aiosqlite",
    ):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
    node_versions = []
    for package in ("ws", "ocpp-rpc", "bufferutil"):
        with contextlib.suppress(Exception):
            meta = json.loads((NODE_DIR / "node_modules" / package / "package.json").read_text())
            node_versions.append(f"{package} {meta['version']}")
    pg = run_text(["psql", "-h", PG_HOST, "-U", "postgres", "-Atc", "show server_version"])
    mosquitto = run_text(["sh", "-c", "mosquitto -h 2>/dev/null | head -1"])
    return [
        f"- CPU: {model}, {os.cpu_count()} cores ({lscpu.get('Thread(s) per core', '?')} "
        f"thread(s) per core), {lscpu.get('Hypervisor vendor', 'no')} hypervisor",
        f"- memory: {int(mem) / 1024 / 1024:.1f} GiB; kernel {platform.release()}",
        f"- Python {platform.python_version()}: {', '.join(versions)}",
        f"- Node {run_text(['node', '--version'])}: {', '.join(node_versions)}",
        f"- PostgreSQL {pg or '?'} (unpinned server; our database's backends pinned to core 0 "
        f"during P2), {mosquitto or 'Mosquitto'} on 127.0.0.1:1883 (unpinned)",
        f"- csms commit {run_text(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


def document(report: Report, opts: Options, argv: list[str], elapsed: float) -> str:
    out = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run.py`); do not edit by hand, run it again.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## How it was measured",
        "",
        f"`python bench/run.py {' '.join(argv)}`".replace("  ", " ").replace(" `", "`"),
        f"({opts.repeats} repeat(s) of every scenario, {opts.warmup:g} s warm-up and "
        f"{opts.duration:g} s measured per load run; the whole run took {elapsed / 60:.1f} min).",
        "",
        "- The server under test runs pinned to core 0 (`taskset -c 0`); the load generator,",
        "  `node bench/node/loadgen.js` (the `ws` package), the runner and py-spy on core 1;",
        "  loopback only. A result whose generator used more than 80 % of its core is invalid.",
        "- Load: N connections, each with one CALL outstanding, alternating a MeterValues",
        "  (one meterValue, four sampledValues: energy, power, current, voltage) and a",
        "  Heartbeat; each connection sends BootNotification first (and in P2/P4",
        "  StartTransaction, so meter values belong to a transaction and `session.updated` is",
        "  emitted). Latency is from sending a CALL to receiving its answer, at the generator.",
        "- P1 servers: `bench/servers/csms_protocol.py` (csms's own `ChargerConnection` loop,",
        "  `RpcSession`, schema validation and WebSocket settings; handlers that store",
        "  nothing), `bench/servers/raw_websockets.py`, `bench/servers/raw_picows.py`,",
        "  `bench/servers/ocpp_chargepoint.py` (`ocpp.v16.ChargePoint`),",
        "  `bench/node/ocpp_rpc_server.js` (`ocpp-rpc` RPCServer, `strictMode: true`). The",
        "  Python servers use uvloop when it is installed (it is, with `.[bench]`).",
        "- P2/P3/P4: `csms serve --config <empty toml>` with `CSMS_DATABASE__URL` (a fresh",
        "  SQLite file or a fresh PostgreSQL database per run), `CSMS_MQTT__URL` Mosquitto with",
        "  a topic prefix of its own, `CSMS_LOG__LEVEL=warning`. After each P2 run csms is",
        "  stopped (it flushes) and `meter_values` rows and `meter.values` + `session.updated`",
        "  outbox rows are counted against the acknowledged MeterValues.",
        "- P3: RSS from /proc after 200 warm-up chargers came and went, before and 3 s after N",
        "  chargers connected and booted (500 at a time); the boot storm opens every",
        "  connection at once and times until the last BootNotification is Accepted.",
        "- P4: `POST /api/v1/charge-points/{id}/commands/GetConfiguration` one after the other",
        "  (5 ms apart), the chargers answer at once; idle, then while P2's load runs at 50 %.",
        "- P5: `bench/events.py`: MeterValues one at a time from one charger to its",
        "  `meter.values` event on a Mosquitto subscriber; outbox drain of a 100,000-event",
        "  backlog (rate from the first event received to the last).",
        "",
        "## Results",
        "",
        "Median [min-max] over the repeats; CPU is % of one core over the measured window.",
        "",
        markdown_table(report.rows),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, shown, _, met in targets(report):
        verdict = {True: "yes", False: "**no**", None: "-"}[met]
        out.append(f"| {name} | {shown} | {verdict} |")
    out += ["", "## What limits each figure", "", *limits(report), ""]
    if report.profiles:
        cats = [c for c, _ in CATEGORIES] + [OTHER]
        out += [
            "### Where a call's CPU time goes (py-spy)",
            "",
            "py-spy samples csms for the measured window (200 Hz, from core 1); each sample is",
            "given to the innermost frame that belongs to a layer: WebSocket layer",
            "(`websockets`), parsing + validation (`rpc.py`, `schemas.py`: orjson and",
            "jsonschema-rs are native and count to their caller), handlers (`handlers.py`,",
            "`connection.py`, `csms/core`), storage (`csms/store`, SQLAlchemy, the drivers),",
            "events (`csms/events`, pydantic, aiomqtt), logging; the rest is the event loop,",
            "socket I/O and asyncio's task switching.",
            "",
            "| run | " + " | ".join(cats) + " |",
            "|---|" + "---|" * len(cats),
        ]
        for name, shares in report.profiles.items():
            out.append(
                f"| {name} | " + " | ".join(f"{shares.get(c, 0):.0f} %" for c in cats) + " |"
            )
        out.append("")
    if ANALYSIS.exists():
        # The reading of the figures changes less often than the figures: kept by hand.
        out += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    if report.notes:
        out += ["## Notes from this run", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(out) + "\n"


ANALYSIS = Path(__file__).with_name("analysis.md")


# -- main ----------------------------------------------------------------------------------------

SCENARIOS = {"P1": p1, "P2": p2, "P3": p3, "P4": p4, "P5": p5, "PROFILE": profile}


def raise_fd_limit(wanted: int = 200_000) -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_setup() -> None:
    if not (NODE_DIR / "node_modules" / "ws").exists():
        raise SystemExit("bench/node/node_modules is missing: run `make bench-deps` first")
    for module in ("picows", "uvloop"):
        try:
            __import__(module)
        except ImportError:
            raise SystemExit(f"{module} is missing: pip install -e '.[bench]'") from None


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--quick", action="store_true", help="a 2-minute subset, 1 repeat")
    parser.add_argument("--repeats", type=int, help="runs per scenario (default 3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="measured seconds per load run (default 8)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per load run (default 2)")
    parser.add_argument("--only", help="comma-separated scenarios: P1,P2,P3,P4,P5,PROFILE")
    parser.add_argument(
        "--output",
        default=str(ROOT / "docs" / "performance.md"),
        help="where the report goes ('-' for nowhere)",
    )
    args = parser.parse_args()
    check_setup()
    chosen = [s.strip().upper() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    if args.quick and not args.only:
        chosen = ["P1", "P2", "P4", "P5"]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(GENERATOR_CORE)})
    limit = raise_fd_limit()
    progress(f"file-descriptor limit {limit}; scenarios {','.join(chosen)}")
    started = time.perf_counter()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as scratch:
        opts = Options(
            repeats=args.repeats or (1 if args.quick else 3),
            duration=args.duration or (5 if args.quick else 8),
            warmup=args.warmup or (1 if args.quick else 2),
            quick=args.quick,
            scratch=Path(scratch),
        )
        if limit < 21_000 and "P3" in chosen and not args.quick:
            report.notes.append(f"file-descriptor limit {limit}: 20,000 connections may fail")
        for name in chosen:
            try:
                await SCENARIOS[name](report, opts)
            except Exception as exc:  # one broken scenario must not lose the others
                progress(f"{name} failed: {exc!r}")
                report.notes.append(f"{name} failed: {exc!r}")
    elapsed = time.perf_counter() - started
    print(markdown_table(report.rows))
    print()
    for name, shown, _, met in targets(report):
        if met is not None or "information" in name:
            print(f"- {name}: {shown} {'' if met is None else ('met' if met else 'MISSED')}")
    if args.output != "-":
        text = document(report, opts, sys.argv[1:], elapsed)
        await asyncio.to_thread(Path(args.output).write_text, text)
        progress(f"wrote {args.output} ({elapsed / 60:.1f} min)")
    for task in _DRAINS:
        task.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
