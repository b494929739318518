"""Test support: a raw OCPP-J client and a running csms on free ports with a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import asyncpg
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from csms.app import Csms
from csms.config import (
    ApiSettings,
    DatabaseSettings,
    LogSettings,
    MqttSettings,
    OcpiSettings,
    OcppSettings,
    SecuritySettings,
    Settings,
)
from csms.store.db import Database

# The one time unit of the tests, in seconds: every wait and timeout is a multiple of it.
# As in websockets' tests/utils.py, CSMS_TESTS_TIMEOUT_FACTOR=3 makes them all 3 times longer.
MS = 0.001 * float(os.environ.get("CSMS_TESTS_TIMEOUT_FACTOR", "1"))
API_TOKEN = "test-token"
PG_ADMIN_DSN = os.environ.get("CSMS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


class CallErrorReceived(Exception):
    def __init__(self, frame: list[Any]) -> None:
        super().__init__(f"{frame[2]}: {frame[3]}")
        self.code: str = frame[2]
        self.description: str = frame[3]
        self.details: dict[str, Any] = frame[4]


class RawCharger:
    """A minimal OCPP-J client speaking raw frames, so tests see exactly what goes on the wire."""

    _ids = itertools.count(1)

    def __init__(self, websocket: ClientConnection) -> None:
        self.ws = websocket

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv_frame(self) -> list[Any]:
        async with asyncio.timeout(10_000 * MS):
            text = await self.ws.recv()
        frame = orjson.loads(text)
        assert isinstance(frame, list)
        return frame

    async def exchange(self, frame: list[Any] | str) -> list[Any]:
        """Send a frame and return the next frame the CSMS sends."""
        await self.send_raw(frame if isinstance(frame, str) else orjson.dumps(frame).decode())
        return await self.recv_frame()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A CALL whose CALLRESULT payload is returned; a CALLERROR raises."""
        unique_id = f"t{next(self._ids)}"
        answer = await self.exchange([2, unique_id, action, payload])
        assert answer[1] == unique_id, answer
        if answer[0] == 4:
            raise CallErrorReceived(answer)
        assert answer[0] == 3, answer
        result: dict[str, Any] = answer[2]
        return result

    async def boot(self) -> dict[str, Any]:
        return await self.call(
            "BootNotification", {"chargePointVendor": "TestVendor", "chargePointModel": "T1"}
        )


@dataclass
class RunningCsms:
    app: Csms
    ocpp_url: str
    api_url: str
    api_token: str

    @property
    def chargers(self) -> Any:
        return self.app.ocpp.chargers

    @property
    def ocpi_versions_url(self) -> str:
        """csms's OCPI versions endpoint (the OCPI listener must be on)."""
        assert self.app.roaming is not None
        return f"{self.app.roaming.base_url()}/ocpi/versions"

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=10_000 * MS,
        )

    @asynccontextmanager
    async def charger(
        self, identity: str | None = None, *, boot: bool = True, path: str | None = None
    ) -> AsyncIterator[RawCharger]:
        url = f"{self.ocpp_url}/{identity or new_identity()}" if path is None else path
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS) as ws:  # type: ignore[list-item]
            charger = RawCharger(ws)
            if boot:
                await charger.boot()
            yield charger


@asynccontextmanager
async def writing(database: Database) -> AsyncIterator[Database]:
    """The database migrated, with its group-commit writer running; disposed after."""
    await database.migrate()
    writer = asyncio.create_task(database.writer.run())
    try:
        yield database
    finally:
        database.writer.close()
        await writer
        await database.dispose()


async def drop_connections(database: Database) -> int:
    """Terminate every server connection of the database, as a restart would; how many."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        dropped = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()) AS terminated",
            database.engine.url.database,
        )
    finally:
        await admin.close()
    return int(dropped)


async def serve_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`csms serve` as a process of its own, once it logged `csms_ready`; its log is drained
    in the background so that it never blocks on a full pipe."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csms", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    async with asyncio.timeout(20_000 * MS):
        while True:
            line = await process.stderr.readline()
            assert line, "csms exited before it was ready"
            if b'"csms_ready"' in line:
                break
    _DRAINS.add(asyncio.create_task(_drain(process.stderr)))
    return process


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait until it has unwound.

    A task cancelled and left running can still hold a database connection when the test
    disposes the engine; SQLAlchemy then closes that connection from a task that waits
    forever on aiosqlite's stopped thread, and the event loop never closes.
    """
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def new_identity(prefix: str = "CP") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2_000 * MS).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The development machines and CI run Mosquitto here; elsewhere each csms embeds a broker.
MOSQUITTO_UP = _listening("127.0.0.1", 1883)


def mqtt_settings() -> MqttSettings:
    """A broker for one test: Mosquitto with a topic prefix of its own, or an embedded one."""
    url = "mqtt://127.0.0.1:1883" if MOSQUITTO_UP else f"mqtt://127.0.0.1:{free_port()}"
    return MqttSettings(url=url, topic_prefix=f"csms-test-{uuid.uuid4().hex[:12]}", embedded=True)


# The WebSocket layer of every csms a test starts: the `transport` fixture (tests/conftest.py)
# sets it, so that the OCPP-facing tests run on both transports.
TRANSPORT = "websockets"
TRANSPORTS = ("websockets", "picows")


def settings_for(
    database_url: str,
    *,
    mqtt: MqttSettings | None = None,
    security: SecuritySettings | None = None,
    ocpi: OcpiSettings | None = None,
    **ocpp: Any,
) -> Settings:
    ocpp = {"transport": TRANSPORT, **ocpp}
    return Settings(
        ocpp=OcppSettings(host="127.0.0.1", port=0, **ocpp),
        ocpi=ocpi or OcpiSettings(),
        security=security or SecuritySettings(),
        # Other test processes share the machine: a niced API thread would crawl behind them.
        api=ApiSettings(host="127.0.0.1", port=0, token=API_TOKEN, thread_nice=0),
        mqtt=mqtt or mqtt_settings(),
        database=DatabaseSettings(url=database_url),
        log=LogSettings(level="warning", format="console"),
    )


@asynccontextmanager
async def running_csms(settings: Settings, **parts: Any) -> AsyncIterator[RunningCsms]:
    """A real csms on free ports; stopped cleanly afterwards. `parts` go to `Csms`."""
    app = Csms(settings, **parts)
    task = asyncio.create_task(app.run())
    ready = asyncio.create_task(app.ready.wait())
    await asyncio.wait([task, ready], timeout=10_000 * MS, return_when=asyncio.FIRST_COMPLETED)
    if not app.ready.is_set():
        ready.cancel()
        app.stop()  # a start that is only slow must not leave the test waiting for ever
        async with asyncio.timeout(10_000 * MS):
            await task  # surfaces the start-up error
        raise RuntimeError("csms did not become ready")
    try:
        yield RunningCsms(
            app=app,
            ocpp_url=f"ws://127.0.0.1:{app.ocpp_port}/ocpp"
            if settings.security.plain_listener
            else "",
            api_url=f"http://127.0.0.1:{app.api_port}/api/v1",
            api_token=API_TOKEN,
        )
    finally:
        app.stop()
        async with asyncio.timeout(10_000 * MS):
            await task


def postgres_reachable() -> bool:
    """Whether the admin DSN's server accepts TCP connections (checked once per run)."""
    address = PG_ADMIN_DSN.rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = address.partition(":")
    return _listening(host, int(port or 5432))


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"csms_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def connection_seen(csms: RunningCsms, charge_point_id: str) -> AsyncIterator[None]:
    """On leaving the block, wait until csms has recorded the charger's connection."""
    seen = asyncio.Event()

    def listener(identity: str, connected: bool) -> None:
        if identity == charge_point_id and connected:
            seen.set()

    csms.app.ocpp.listeners.append(listener)
    try:
        yield
        async with asyncio.timeout(10_000 * MS):
            await seen.wait()
    finally:
        csms.app.ocpp.listeners.remove(listener)


async def disconnected(csms: RunningCsms, charge_point_id: str) -> None:
    """Wait until csms reports the charger's connection gone (fails after 10 s, scaled)."""
    gone = asyncio.Event()

    def listener(identity: str, connected: bool) -> None:
        if identity == charge_point_id and not connected:
            gone.set()

    csms.app.ocpp.listeners.append(listener)
    try:
        if charge_point_id in csms.chargers:
            async with asyncio.timeout(10_000 * MS):
                await gone.wait()
    finally:
        csms.app.ocpp.listeners.remove(listener)


class Subscriber:
    """Collects the events of one topic prefix, as a consumer would."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.retained: list[bool] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.events.append(orjson.loads(message.payload))
            self.retained.append(message.retain)
            self._arrived.set()

    async def until(self, count: int, *, of_type: str | None = None) -> list[dict[str, Any]]:
        """Wait until `count` events (of a type) have arrived; return those events."""
        async with asyncio.timeout(10_000 * MS):
            while len(self.of(of_type)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(of_type)

    def of(self, event_type: str | None) -> list[dict[str, Any]]:
        return [e for e in self.events if event_type is None or e["type"] == event_type]

    def close(self) -> None:
        self._task.cancel()


@asynccontextmanager
async def subscribed(url: str, prefix: str) -> AsyncIterator[Subscriber]:
    """A consumer subscribed (SUBACK received) to every event under `prefix`."""
    address = urlsplit(url)
    identifier = f"t-{uuid.uuid4().hex[:8]}"
    client = aiomqtt.Client(
        address.hostname or "127.0.0.1", address.port or 1883, identifier=identifier
    )
    async with client:
        await client.subscribe(f"{prefix}/events/#", qos=1)
        subscriber = Subscriber(client)
        try:
            yield subscriber
        finally:
            subscriber.close()


def mqtt_of(csms: RunningCsms) -> MqttSettings:
    """The broker and topic prefix a running csms publishes to."""
    return csms.app.settings.mqtt
