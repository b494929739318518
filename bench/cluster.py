"""Cluster benchmark (docs/performance.md, "Cluster"): what can be measured on one machine.

    python bench/cluster.py [--chargers 200] [--seconds 10] [--commands 500] [--fleet 3000]

Needs PostgreSQL (CSMS_TEST_PG_DSN or postgresql://postgres@127.0.0.1:5432/postgres) and
Mosquitto on 127.0.0.1:1883; the fleet phase needs haproxy. Each phase uses a fresh
database. Prints figures; asserts nothing.

- throughput: one node, the same load twice in one run: standalone on PostgreSQL, then in
  cluster mode (a one-node cluster: ownership rows, partitioned QoS 2 relay, heartbeats).
  `--chargers` chargers send MeterValues in a closed loop for `--seconds`; messages
  answered per second, and events published per second (outbox rows delivered).
- forwarded command: two nodes; a charger on n1 answers at once; `--commands` commands
  one after another through n2's API (forwarded over the broker) and through n1's
  (local); p50/p99 of each and of the difference.
- reconnect: three nodes behind HAProxy (deploy/haproxy.cfg), `--fleet` csms-sim chargers;
  SIGKILL of the busiest node; seconds until every charger is held by a survivor.
- writes: `--fleet` chargers on the commuter scenario at 60x (one simulated hour per
  minute) on one cluster node: rows inserted/updated/deleted and database growth, scaled
  to 1,000 chargers and one hour.
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
from collections.abc import AsyncIterator
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

    def __init__(self, node_id: str, *, dsn: str, prefix: str, cluster: bool) -> None:
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
            "CSMS_CLUSTER__PARTITIONS": "4",
            "CSMS_CLUSTER__HEARTBEAT_INTERVAL": "0.5",
            "CSMS_CLUSTER__LEASE_SECONDS": "2",
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
        if self.process is not None:
            self.process.send_signal(sig)
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


async def _published_rate(dsn: str, seconds: float) -> float:
    """Outbox rows delivered per second over the last `seconds` of the run."""
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM outbox_events"
            " WHERE delivered_at > now() - make_interval(secs => $1)",
            seconds,
        )
    finally:
        await connection.close()
    return float(count) / seconds


async def throughput(chargers: int, seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    for mode in ("standalone", "cluster"):
        async with fresh_database() as dsn:
            node = Node(
                "b1", dsn=dsn, prefix=f"bench-{uuid.uuid4().hex[:6]}", cluster=mode == "cluster"
            )
            await node.start()
            try:
                figures[f"{mode}_msgs"] = await _load(node, chargers, seconds)
                await asyncio.sleep(2)  # the relay catches up
                figures[f"{mode}_events"] = await _published_rate(dsn, seconds + 2)
            finally:
                await node.stop()
    figures["ratio_msgs"] = figures["cluster_msgs"] / figures["standalone_msgs"]
    return figures


# --- forwarded commands ----------------------------------------------------------------------


async def forwarded(commands: int) -> dict[str, float]:
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
            for node, kind in ((n1, "local"), (n2, "forwarded")):
                async with node.api() as api:
                    for _ in range(commands):
                        started = time.perf_counter()
                        reply = await api.post("/charge-points/FWD-1/commands/ClearCache", json={})
                        times[kind].append(time.perf_counter() - started)
                        assert reply.status_code == 200, reply.text
        finally:
            answering.cancel()
            await ws.close()
            await asyncio.gather(n1.stop(), n2.stop())
    out: dict[str, float] = {}
    for kind, values in times.items():
        values.sort()
        out[f"{kind}_p50_ms"] = 1000 * statistics.median(values)
        out[f"{kind}_p99_ms"] = 1000 * values[int(0.99 * (len(values) - 1))]
    return out


# --- reconnect after a node dies ---------------------------------------------------------------


def _haproxy_config(nodes: list[Node], port: int) -> str:
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    text = text.replace("    bind :9000", f"    bind 127.0.0.1:{port}")
    text = text.replace("maxconn 200000", "maxconn 9000")
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


async def reconnect(fleet: int, scenario: str = "idle") -> dict[str, float]:
    async with fresh_database() as dsn:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        nodes = [Node(f"n{i}", dsn=dsn, prefix=prefix, cluster=True) for i in (1, 2, 3)]
        for node in nodes:
            await node.start()
        port = free_port()
        config = Path(tempfile.mkdtemp()) / "haproxy.cfg"
        config.write_text(_haproxy_config(nodes, port))
        haproxy = await asyncio.create_subprocess_exec(
            "haproxy", "-db", "-f", str(config), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulators", "run", "--url", f"ws://127.0.0.1:{port}/ocpp",
            "--chargers", str(fleet), "--scenario", scenario, "--reconnect-cap", "5",
            "--progress", "off",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            alive = {n.node_id for n in nodes}
            started = time.monotonic()
            # Polling the API: the figure is the time until it says so.
            while await _held(nodes[0], alive) < fleet:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            placed = time.monotonic() - started
            view = await _cluster_view(nodes[0])
            busiest = max(view["nodes"], key=lambda n: n["chargers"])
            victim = next(n for n in nodes if n.node_id == busiest["nodeId"])
            survivors = [n for n in nodes if n is not victim]
            await victim.stop(signal.SIGKILL)
            killed = time.monotonic()
            alive = {n.node_id for n in survivors}
            while await _held(survivors[0], alive) < fleet:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            moved = time.monotonic() - killed
        finally:
            sim.send_signal(signal.SIGINT)
            await sim.wait()
            haproxy.terminate()
            await haproxy.wait()
            for node in nodes:
                await node.stop()
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
    parser.add_argument("--fleet", type=int, default=3000)
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
