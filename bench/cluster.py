"""Cluster benchmark (docs/performance.md, "Cluster"): what can be measured on one machine.

    python bench/cluster.py [--chargers 200] [--seconds 10] [--commands 500] [--fleet 10000]

Needs PostgreSQL (CSMS_TEST_PG_DSN or postgresql://postgres@127.0.0.1:5432/postgres) and
Mosquitto on 127.0.0.1:1883; the fleet phase needs haproxy. Each phase uses a fresh
database. Prints figures; asserts nothing. `make bench` runs the first two as C1
(bench/scenarios/cluster_scaleout.py) and the reconnect as C2.

- throughput: one node, the same load twice in one run: standalone on PostgreSQL, then in
  cluster mode (a one-node cluster: ownership rows, partitioned QoS 2 relay, heartbeats).
  `--chargers` chargers send MeterValues in a closed loop for `--seconds`; messages
  answered per second, and events published per second (outbox rows delivered).
- forwarded command: two nodes; a charger on n1 answers at once; `--commands` commands
  through n1's API (local) and through n2's (forwarded over the broker), alternated one
  by one; p50/p99 of each.
- reconnect: three nodes behind two HAProxy processes (deploy/haproxy.cfg), each in front
  of half of `--fleet` csms-sim chargers (a process may open 20,000 files here, two per
  proxied charger); SIGKILL of the busiest node; seconds until every charger is held by a
  survivor.
- writes: `--fleet` chargers (at most 1,000) on the commuter scenario at 60x (one
  simulated hour per minute) on one cluster node: rows inserted/updated/deleted and
  database growth, scaled to 1,000 chargers and one hour.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("CSMS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = "mqtt://127.0.0.1:1883"
TOKEN = "bench-token"
TASKSET = shutil.which("taskset")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    name = f"csms_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Node:
    """One `csms serve` process, pinned to core 0 when taskset exists."""

    def __init__(
        self,
        node_id: str,
        *,
        dsn: str,
        prefix: str,
        cluster: bool,
        heartbeat: float = 0.5,
        lease: float = 2,
    ) -> None:
        self.node_id = node_id
        self.ocpp_port, self.api_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "CSMS_DATABASE__URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "CSMS_OCPP__HOST": "127.0.0.1",
            "CSMS_OCPP__PORT": str(self.ocpp_port),
            "CSMS_API__PORT": str(self.api_port),
            "CSMS_API__TOKEN": TOKEN,
            "CSMS_MQTT__URL": MQTT_URL,
            "CSMS_MQTT__TOPIC_PREFIX": prefix,
            "CSMS_MQTT__EMBEDDED": "false",
            "CSMS_LOG__LEVEL": "warning",
            "CSMS_CLUSTER__ENABLED": "true" if cluster else "false",
            "CSMS_CLUSTER__NODE_ID": node_id,
            "CSMS_CLUSTER__PARTITIONS": "16",  # the default
            "CSMS_CLUSTER__HEARTBEAT_INTERVAL": str(heartbeat),
            "CSMS_CLUSTER__LEASE_SECONDS": str(lease),
        }
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}/api/v1",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )

    async def start(self) -> None:
        command = [sys.executable, "-m", "csms", "serve"]
        if TASKSET:
            command = [TASKSET, "-c", "0", *command]
        self.process = await asyncio.create_subprocess_exec(
            *command, env=self.env, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(60):
            while True:
                try:
                    async with self.api() as api:
                        if (await api.get("/health")).status_code == 200:
                            return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the node and wait for its exit; SIGKILL after 30 s (a bench must end)."""
        if self.process is not None:
            self.process.send_signal(sig)
            try:
                async with asyncio.timeout(30):
                    await self.process.wait()
            except TimeoutError:
                _say(f"{self.node_id} still running 30 s after signal {sig}: SIGKILL")
                self.process.kill()
                await self.process.wait()
            self.process = None


# --- throughput ------------------------------------------------------------------------------


async def _charger(url: str) -> tuple[ClientConnection, list[int]]:
    ws = await connect(url, subprotocols=["ocpp1.6"], open_timeout=60)  # type: ignore[list-item]
    await _call(ws, "BootNotification", {"chargePointVendor": "B", "chargePointModel": "M"})
    return ws, [0]


async def _call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> Any:
    await ws.send(orjson.dumps([2, uuid.uuid4().hex[:8], action, payload]).decode())
    return orjson.loads(await ws.recv())


async def _load(node: Node, chargers: int, seconds: float) -> float:
    """MeterValues answered per second by `chargers` chargers in a closed loop."""
    fleet = await asyncio.gather(*(_charger(f"{node.ocpp_url}/B-{i:05d}") for i in range(chargers)))
    done = 0
    deadline = time.monotonic() + seconds

    async def run(ws: ClientConnection) -> None:
        nonlocal done
        wh = 0
        while time.monotonic() < deadline:
            wh += 10
            sample = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            await _call(
                ws,
                "MeterValues",
                {"connectorId": 1, "meterValue": [{"timestamp": at, "sampledValue": [sample]}]},
            )
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(run(ws) for ws, _ in fleet))
    rate = done / (time.monotonic() - started)
    for ws, _ in fleet:
        await ws.close()
    return rate


async def _relay_figures(dsn: str) -> tuple[int, float, float]:
    """Events delivered, and the p50/p99 seconds from commit to the broker's acknowledgement."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow(
            "SELECT count(*),"
            " percentile_cont(0.5) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM delivered_at - created_at)),"
            " percentile_cont(0.99) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM delivered_at - created_at))"
            " FROM outbox_events WHERE delivered_at IS NOT NULL"
        )
    finally:
        await connection.close()
    return int(row[0]), float(row[1] or 0), float(row[2] or 0)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _one_run(mode: str, chargers: int, seconds: float) -> dict[str, float]:
    async with fresh_database() as dsn:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        node = Node("b1", dsn=dsn, prefix=prefix, cluster=mode == "cluster")
        await node.start()
        try:
            assert node.process is not None
            pid = node.process.pid  # taskset execs csms in place: the same pid
            cpu = _cpu_seconds(pid)
            rate = await _load(node, chargers, seconds)
            cpu = _cpu_seconds(pid) - cpu
            await asyncio.sleep(2)  # the relay catches up
            events, lag50, lag99 = await _relay_figures(dsn)
        finally:
            await node.stop()
    return {
        "msgs_per_s": rate,
        "msgs_per_cpu_s": rate * seconds / cpu if cpu else 0.0,
        "events": events,
        "relay_lag_p50_ms": 1000 * lag50,
        "relay_lag_p99_ms": 1000 * lag99,
    }


async def throughput(chargers: int, seconds: float, repeats: int = 3) -> dict[str, Any]:
    """Standalone and cluster runs alternated, `repeats` each; medians."""
    runs: dict[str, list[dict[str, float]]] = {"standalone": [], "cluster": []}
    for _ in range(repeats):
        for mode in ("standalone", "cluster"):
            runs[mode].append(await _one_run(mode, chargers, seconds))
    figures: dict[str, Any] = {}
    for mode, results in runs.items():
        for key in results[0]:
            figures[f"{mode}_{key}"] = statistics.median(r[key] for r in results)
    figures["ratio_msgs_per_s"] = figures["cluster_msgs_per_s"] / figures["standalone_msgs_per_s"]
    figures["ratio_msgs_per_cpu_s"] = (
        figures["cluster_msgs_per_cpu_s"] / figures["standalone_msgs_per_cpu_s"]
    )
    return figures


# --- forwarded commands ----------------------------------------------------------------------


async def forwarded(commands: int, warmup: int = 20) -> dict[str, float]:
    """`commands` ClearCache through n1 (local: n1 holds the charger) and as many through
    n2 (forwarded over the broker), alternated one by one so that the machine's load hits
    both alike; `warmup` of each first, not counted."""
    async with fresh_database() as dsn:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        n1 = Node("n1", dsn=dsn, prefix=prefix, cluster=True)
        n2 = Node("n2", dsn=dsn, prefix=prefix, cluster=True)
        await asyncio.gather(n1.start(), n2.start())
        ws, _ = await _charger(f"{n1.ocpp_url}/FWD-1")

        async def answer() -> None:
            async for text in ws:
                frame = orjson.loads(text)
                if frame[0] == 2:
                    await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())

        answering = asyncio.create_task(answer())
        times: dict[str, list[float]] = {"local": [], "forwarded": []}
        try:
            async with n1.api() as local, n2.api() as remote:
                for n in range(warmup + commands):
                    for kind, api in (("local", local), ("forwarded", remote)):
                        started = time.perf_counter()
                        reply = await api.post("/charge-points/FWD-1/commands/ClearCache", json={})
                        elapsed = time.perf_counter() - started
                        assert reply.status_code == 200, reply.text
                        if n >= warmup:
                            times[kind].append(elapsed)
        finally:
            answering.cancel()
            await ws.close()
            await asyncio.gather(n1.stop(), n2.stop())
    out: dict[str, float] = {}
    for kind, values in times.items():
        values.sort()
        out[f"{kind}_n"] = len(values)
        out[f"{kind}_p50_ms"] = 1000 * statistics.median(values)
        out[f"{kind}_p99_ms"] = 1000 * values[int(0.99 * (len(values) - 1))]
    return out


# --- reconnect after a node dies ---------------------------------------------------------------


def _haproxy_config(nodes: list[Node], port: int, maxconn: int) -> str:
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("    bind :9000", f"    bind 127.0.0.1:{port}")
    text = text.replace("maxconn 200000", f"maxconn {maxconn}")
    for line in (
        "    log stdout format raw local0 notice\n",
        "    log global\n",
        "    option tcplog\n",
    ):
        text = text.replace(line, "")
    for node in nodes:
        text = re.sub(
            rf"server {node.node_id} \S+", f"server {node.node_id} 127.0.0.1:{node.ocpp_port}", text
        )
    return text


async def _cluster_view(node: Node) -> dict[str, Any]:
    async with node.api() as api:
        view: dict[str, Any] = (await api.get("/cluster")).json()
    return view


async def _held(node: Node, alive: set[str]) -> int:
    view = await _cluster_view(node)
    return sum(n["chargers"] for n in view["nodes"] if n["alive"] and n["nodeId"] in alive)


def _say(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _until_held(
    node: Node, alive: set[str], fleet: int, *, what: str, say: Callable[[str], None]
) -> float:
    """Seconds until the live nodes `alive` hold the whole fleet, polling the API (the
    figure is the time until it says so); a progress line every 5 s."""
    started = last = time.monotonic()
    while (held := await _held(node, alive)) < fleet:
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            say(f"{what}: {held:,} of {fleet:,} held after {last - started:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def reconnect(
    fleet: int,
    scenario: str = "idle",
    *,
    proxies: int = 2,
    say: Callable[[str], None] = _say,
    timeout: float = 300,  # noqa: ASYNC109 (a bench's own budget, not an API)
) -> dict[str, float]:
    """Three nodes behind `proxies` HAProxy processes (deploy/haproxy.cfg), each in front of
    its share of `fleet` csms-sim chargers from a simulator process of its own; SIGKILL of
    the busiest node; seconds until the survivors hold every charger.

    Several proxies and simulators, because a process may open at most 20,000 files here
    (a hard limit): one HAProxy holds two per charger, so 10,000 chargers need two.
    """
    share = -(-fleet // proxies)
    async with fresh_database() as dsn:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        # The default lease (10 s, heartbeat 2 s): three nodes on one loaded core miss a 2 s
        # lease now and then, and the leader then lets a live node's chargers go. Chargers
        # reconnecting to the survivors do not wait for the dead node's lease.
        nodes = [
            Node(f"n{i}", dsn=dsn, prefix=prefix, cluster=True, heartbeat=2, lease=10)
            for i in (1, 2, 3)
        ]
        await asyncio.gather(*(node.start() for node in nodes))
        folder = Path(tempfile.mkdtemp())
        helpers: list[asyncio.subprocess.Process] = []
        try:
            for n in range(proxies):
                port = free_port()
                config = folder / f"haproxy-{n}.cfg"
                config.write_text(_haproxy_config(nodes, port, maxconn=share + 1000))
                helpers.append(
                    await asyncio.create_subprocess_exec(
                        "haproxy", "-db", "-f", str(config),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )
                )  # fmt: skip
                count = min(share, fleet - n * share)
                helpers.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "simulators", "run",
                        "--url", f"ws://127.0.0.1:{port}/ocpp",
                        "--chargers", str(count), "--first", str(1 + n * share),
                        "--scenario", scenario, "--reconnect-cap", "5", "--progress", "off",
                        # Patient chargers: on a loaded machine the handshake through
                        # HAProxy to three nodes on one core takes longer than the default
                        # 10 s, and a charger giving up only adds to the storm.
                        "--open-timeout", "60", "--call-timeout", "60",
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )
                )  # fmt: skip
            async with asyncio.timeout(timeout):
                alive = {n.node_id for n in nodes}
                placed = await _until_held(nodes[0], alive, fleet, what="connecting", say=say)
                view = await _cluster_view(nodes[0])
                busiest = max(view["nodes"], key=lambda n: n["chargers"])
                victim = next(n for n in nodes if n.node_id == busiest["nodeId"])
                survivors = [n for n in nodes if n is not victim]
                say(
                    f"all {fleet:,} held after {placed:.1f} s; SIGKILL {victim.node_id} "
                    f"({busiest['chargers']:,} chargers)"
                )
                await victim.stop(signal.SIGKILL)
                alive = {n.node_id for n in survivors}
                moved = await _until_held(
                    survivors[0], alive, fleet, what="after the kill", say=say
                )
                say(f"all {fleet:,} held by the survivors {moved:.1f} s after the kill")
        finally:
            for process in helpers:
                if process.returncode is None:
                    process.send_signal(signal.SIGINT)
            for process in helpers:
                try:
                    async with asyncio.timeout(20):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
            await asyncio.gather(*(node.stop() for node in nodes))
    return {
        "fleet": fleet,
        "initial_connect_s": placed,
        "victim_chargers": busiest["chargers"],
        "all_on_survivors_s": moved,
    }


# --- database writes -------------------------------------------------------------------------


async def writes(fleet: int, minutes: float) -> dict[str, float]:
    """Rows and bytes written on the commuter scenario at 60x, per 1,000 chargers per hour."""
    async with fresh_database() as dsn:
        node = Node("w1", dsn=dsn, prefix=f"bench-{uuid.uuid4().hex[:6]}", cluster=True)
        await node.start()
        name = dsn.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN)
        stats = (
            "SELECT tup_inserted + tup_updated + tup_deleted, pg_database_size($1)"
            " FROM pg_stat_database WHERE datname = $1"
        )
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulators", "run", "--url", node.ocpp_url,
            "--chargers", str(fleet), "--scenario", "commute", "--speed", "60",
            "--progress", "off",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await asyncio.sleep(15)  # connected and booted: count the steady state only
            rows0, size0 = await admin.fetchrow(stats, name)
            await asyncio.sleep(minutes * 60)
            rows1, size1 = await admin.fetchrow(stats, name)
        finally:
            sim.send_signal(signal.SIGINT)
            await sim.wait()
            await admin.close()
            await node.stop()
    simulated_hours = minutes  # 60x: one simulated hour per real minute
    scale = 1000 / fleet / simulated_hours
    return {
        "rows_per_1000_chargers_hour": (rows1 - rows0) * scale,
        "bytes_per_1000_chargers_hour": (size1 - size0) * scale,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--fleet", type=int, default=10000)
    parser.add_argument("--write-minutes", type=float, default=2)
    parser.add_argument("--only", default="throughput,forwarded,reconnect,writes")
    args = parser.parse_args()
    phases = args.only.split(",")
    if "throughput" in phases:
        print("throughput", await throughput(args.chargers, args.seconds), flush=True)
    if "forwarded" in phases:
        print("forwarded", await forwarded(args.commands), flush=True)
    if "reconnect" in phases and shutil.which("haproxy"):
        print("reconnect", await reconnect(args.fleet), flush=True)
    if "writes" in phases:
        print("writes", await writes(min(args.fleet, 1000), args.write_minutes), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
