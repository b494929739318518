"""Through HAProxy with deploy/haproxy.cfg: a fleet of simulated chargers (csms-sim) on
three nodes; SIGKILL of the busiest node and they are all back on the other two, with
every event published exactly once."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.nodes import MQTT_URL, Cluster
from tests.cluster.test_failover import _exactly_once
from tests.support import MS, free_port, subscribed

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")

CONFIG = Path(__file__).parents[2] / "deploy" / "haproxy.cfg"


def haproxy_config(cluster: Cluster, *, port: int) -> str:
    """The shipped config, listening on `port` and pointing at the test's nodes."""
    text = CONFIG.read_text()
    text = text.replace("    bind :9000", f"    bind 127.0.0.1:{port}")
    for node in cluster.nodes:
        text = re.sub(
            rf"server {node.node_id} \S+",
            f"server {node.node_id} 127.0.0.1:{node.env['CSMS_OCPP__PORT']}",
            text,
        )
    # The test machine's file descriptor limit is far below the production maxconn's.
    text = text.replace("maxconn 200000", "maxconn 8000")
    for line in (
        "    log stdout format raw local0 notice\n",
        "    log global\n",
        "    option tcplog\n",
    ):
        text = text.replace(line, "")
    return text


@asynccontextmanager
async def running_haproxy(cluster: Cluster, tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(cluster, port=port))
    process = await asyncio.create_subprocess_exec(
        "haproxy", "-db", "-f", str(config), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(10_000 * MS):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(50 * MS)
                    continue
                writer.close()
                break
        yield port
    finally:
        process.terminate()
        await process.wait()


@asynccontextmanager
async def simulated_fleet(url: str, count: int) -> AsyncIterator[None]:
    """`csms-sim run` with an idle fleet; reconnects within 2 s of losing its node."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "run", "--url", url, "--chargers", str(count),
        "--scenario", "idle", "--reconnect-cap", "2", "--progress", "off",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(20_000 * MS):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _placed(cluster: Cluster, count: int) -> dict[str, Any]:
    """Wait until the live nodes hold `count` chargers between them."""
    async with asyncio.timeout(120_000 * MS):
        while True:
            view = await cluster.cluster_view()
            alive = [n for n in view["nodes"] if n["alive"]]
            if sum(n["chargers"] for n in alive) == count and {n["nodeId"] for n in alive} == {
                n.node_id for n in cluster.running()
            }:
                return view
            await asyncio.sleep(200 * MS)


async def _fleet_moves_after_a_kill(cluster: Cluster, tmp_path: Path, count: int) -> float:
    async with (
        subscribed(MQTT_URL, cluster.prefix) as events,
        running_haproxy(cluster, tmp_path) as port,
        simulated_fleet(f"ws://127.0.0.1:{port}/ocpp", count),
    ):
        view = await _placed(cluster, count)
        busiest = max(view["nodes"], key=lambda n: n["chargers"])
        victim = next(n for n in cluster.nodes if n.node_id == busiest["nodeId"])
        await victim.kill()
        killed = time.monotonic()
        after = await _placed(cluster, count)
        moved_in = time.monotonic() - killed
        async with asyncio.timeout(60_000 * MS):
            while True:
                if not (await cluster.cluster_view())["relayLag"]["pendingEvents"]:
                    break
                await asyncio.sleep(200 * MS)
        await _exactly_once(cluster, events)
    assert busiest["chargers"] >= count // 3
    assert victim.node_id not in {n["nodeId"] for n in after["nodes"] if n["alive"]}
    return moved_in


async def test_a_fleet_behind_haproxy_survives_a_killed_node(
    three_nodes: Cluster, tmp_path: Path
) -> None:
    """150 simulated chargers through HAProxy: after SIGKILL of the busiest node all 150
    are connected to the two others, and each event id was published once."""
    await _fleet_moves_after_a_kill(three_nodes, tmp_path, 150)


@pytest.mark.slow
async def test_a_thousand_chargers_behind_haproxy_survive_a_killed_node(
    three_nodes: Cluster, tmp_path: Path
) -> None:
    """The same with 1,000 chargers (the issue's figure)."""
    await _fleet_moves_after_a_kill(three_nodes, tmp_path, 1000)
