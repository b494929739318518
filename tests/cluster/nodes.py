"""Three real `csms serve` processes on one PostgreSQL and Mosquitto (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx

from tests.support import API_TOKEN, MS, free_port

MQTT_URL = "mqtt://127.0.0.1:1883"


class PortTaken(Exception):
    """The node could not bind a port chosen for it."""


@dataclass
class Node:
    """One `csms serve` process of the cluster."""

    node_id: str
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    log: list[bytes] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.env['CSMS_OCPP__PORT']}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['CSMS_API__PORT']}/api/v1"

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=20_000 * MS,
        )

    async def start(self) -> None:
        """Start the process and wait for `csms_ready` in its log; on a port another
        process took between `free_port()` and the bind, again on fresh ports."""
        for _ in range(3):
            try:
                await self._start()
                return
            except PortTaken:
                self.env["CSMS_OCPP__PORT"] = str(free_port())
                self.env["CSMS_API__PORT"] = str(free_port())
        await self._start()

    async def _start(self) -> None:
        self.log = []
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms", "serve", env=self.env, stderr=asyncio.subprocess.PIPE
        )
        assert process.stderr is not None
        try:
            async with asyncio.timeout(60_000 * MS):
                while True:
                    line = await process.stderr.readline()
                    if not line and any(b"address already in use" in seen for seen in self.log):
                        await process.wait()
                        raise PortTaken(self.node_id)
                    assert line, f"{self.node_id} exited before it was ready: {self.log[-5:]}"
                    self.log.append(line)
                    if b'"csms_ready"' in line:
                        break
        except BaseException:
            # Not ready: the fixture only ends the nodes it knows, so end this one here
            # (one left running kept publishing into later tests' broker).
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        self.process = process
        self._drain = asyncio.create_task(self._read(process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log.append(line)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def stop(self) -> int:
        """SIGTERM and wait for the exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20_000 * MS):
            code = await self.process.wait()
        if self._drain is not None:
            await self._drain
        self.process = None
        return code

    def logged(self, event: str) -> bool:
        return any(f'"{event}"'.encode() in line for line in self.log)


@dataclass
class Cluster:
    nodes: list[Node]
    prefix: str
    database_url: str
    mqtt_url: str = MQTT_URL

    async def cluster_view(self, node: Node | None = None) -> dict[str, Any]:
        async with (node or self.running()[0]).api() as api:
            answer = await api.get("/cluster")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def running(self) -> list[Node]:
        return [node for node in self.nodes if node.process is not None]

    async def settled(self) -> dict[str, Any]:
        """Wait until every partition is held by a running node and one leads."""
        alive = {node.node_id for node in self.running()}
        async with asyncio.timeout(30_000 * MS):
            while True:
                view = await self.cluster_view()
                holders = {p["nodeId"] for p in view["partitions"]}
                if (
                    len(view["partitions"]) == int(view["partitionCount"])
                    and holders <= alive
                    and view["leader"] in alive
                ):
                    return view
                await asyncio.sleep(100 * MS)


def node_env(
    node_id: str,
    *,
    database_url: str,
    prefix: str,
    partitions: int = 4,
    mqtt_url: str = MQTT_URL,
) -> dict[str, str]:
    return {
        **os.environ,
        "CSMS_DATABASE__URL": database_url,
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_OCPP__CALL_TIMEOUT": str(5_000 * MS),
        "CSMS_API__PORT": str(free_port()),
        "CSMS_API__TOKEN": API_TOKEN,
        "CSMS_MQTT__URL": mqtt_url,
        "CSMS_MQTT__TOPIC_PREFIX": prefix,
        "CSMS_MQTT__EMBEDDED": "false",
        "CSMS_LOG__FORMAT": "json",
        "CSMS_CLUSTER__ENABLED": "true",
        "CSMS_CLUSTER__NODE_ID": node_id,
        "CSMS_CLUSTER__PARTITIONS": str(partitions),
        "CSMS_CLUSTER__HEARTBEAT_INTERVAL": "0.25",
        "CSMS_CLUSTER__LEASE_SECONDS": "1.5",
    }


@asynccontextmanager
async def running_cluster(
    database_url: str,
    *,
    size: int = 3,
    env: dict[str, str] | None = None,
    mqtt_url: str = MQTT_URL,
) -> AsyncIterator[Cluster]:
    """`size` nodes on one fresh database, one broker and one topic prefix, started
    together; `env` adds to (or overrides) each node's environment."""
    prefix = f"cl-{uuid4().hex[:8]}"
    setup = {"database_url": database_url, "prefix": prefix, "mqtt_url": mqtt_url}
    nodes = [Node(f"n{i}", node_env(f"n{i}", **setup) | (env or {})) for i in range(1, size + 1)]
    cluster = Cluster(nodes=nodes, prefix=prefix, database_url=database_url, mqtt_url=mqtt_url)
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        await cluster.settled()
        yield cluster
    finally:
        for node in nodes:
            if node.process is not None:
                node.process.send_signal(signal.SIGKILL)
                await node.process.wait()
        _keep_logs(cluster)


def _keep_logs(cluster: Cluster) -> None:
    """With CSMS_TEST_CLUSTER_LOGS=<dir>, each node's log goes to <dir>/<prefix>-<node>.log
    (a failed run's story is in the nodes' logs, not in the test's)."""
    folder = os.environ.get("CSMS_TEST_CLUSTER_LOGS")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    for node in cluster.nodes:
        with open(os.path.join(folder, f"{cluster.prefix}-{node.node_id}.log"), "wb") as out:
            out.writelines(node.log)
