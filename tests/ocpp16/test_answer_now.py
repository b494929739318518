"""picows: a CALL that finds its connection idle is answered in the socket's callback.

`PicowsSocket` hands a text message to `ChargerConnection._answer_now` when serve is parked
in `recv` with nothing queued (sockets.AnswersNow). A handler that does not suspend then
answers without a wake-up of serve's task; one that suspends is finished in serve's task,
before the next message is read. These run a real picows listener and a websockets
client, with handlers that say in which task they ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.http11 import Request

from csms.ocpp16.connection import ChargerConnection
from csms.ocpp16.context import ChargerContext, Handler, Services
from csms.ocpp16.picows_socket import PicowsOptions
from csms.ocpp16.rpc import RpcSession
from csms.ocpp16.schemas import load_validators
from csms.ocpp16.server import SUBPROTOCOL
from csms.ocpp16.sockets import OcppSocket, Peer
from csms.ocpp16.transport_picows import PicowsServer

VALIDATORS = load_validators()


class Bench:
    """A picows listener whose handlers note where they ran, and one that waits."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, bool, Any]] = []  # (action, in a task, log context)
        self.release = asyncio.Event()
        self.suspended = asyncio.Event()
        self.finished = asyncio.Event()
        self.served = asyncio.Event()
        self.connections: list[ChargerConnection] = []
        self.handlers: dict[str, Handler] = {
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status_notification,
            "DataTransfer": self.data_transfer,
        }

    def note(self, action: str) -> None:
        context = structlog.contextvars.get_contextvars().get("charge_point_id")
        self.ran.append((action, asyncio.current_task() is not None, context))

    async def heartbeat(self, ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
        self.note("Heartbeat")
        return {"currentTime": "2026-12-07T00:00:00.000Z"}

    async def status_notification(
        self, ctx: ChargerContext, payload: dict[str, Any]
    ) -> dict[str, Any]:
        self.note("StatusNotification before")
        self.suspended.set()
        await self.release.wait()  # suspends: the rest runs in serve's task
        self.note("StatusNotification after")
        self.finished.set()
        return {}

    async def data_transfer(self, ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
        self.note("DataTransfer before")
        await self.release.wait()
        raise RuntimeError("handler failed after it suspended")

    async def serve(self, websocket: OcppSocket, identity: str) -> None:
        context = ChargerContext(
            charge_point_id=identity,
            services=Services(
                chargers=None,  # type: ignore[arg-type]
                sessions=None,  # type: ignore[arg-type]
                clock=None,  # type: ignore[arg-type]
                heartbeat_interval=300,
            ),
        )
        context.accepted = True
        connection = ChargerConnection(
            websocket=websocket,
            context=context,
            rpc=RpcSession(validators=VALIDATORS, supported=self.handlers.keys(), accepted=True),
            handlers=self.handlers,
            call_timeout=5,
        )
        self.connections.append(connection)
        self.served.set()
        with structlog.contextvars.bound_contextvars(charge_point_id=identity):
            await connection.serve()


async def admit(peer: Peer, request: Request) -> str:
    return request.path.rsplit("/", 1)[-1]


@asynccontextmanager
async def listening(bench: Bench) -> AsyncIterator[ClientConnection]:
    server = PicowsServer(
        admit=admit,
        serve=bench.serve,
        options=PicowsOptions(
            subprotocol=SUBPROTOCOL,
            max_frame_size=65536,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            handshake_timeout=5,
        ),
    )
    await server.listen("127.0.0.1", 0, backlog=16)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/ocpp/NOW1", subprotocols=[SUBPROTOCOL]
        ) as client:
            await asyncio.wait_for(bench.served.wait(), 5)  # serve starts after the 101
            yield client
    finally:
        server.close()
        await server.wait_closed()


async def call(client: ClientConnection, unique_id: str, action: str, payload: Any) -> None:
    await client.send(orjson.dumps([2, unique_id, action, payload]).decode())


async def answer(client: ClientConnection) -> list[Any]:
    result: list[Any] = orjson.loads(await asyncio.wait_for(client.recv(), 5))
    return result


async def test_a_call_to_an_idle_connection_is_answered_in_the_callback() -> None:
    """No task runs the handler, yet it sees the charger's log fields."""
    bench = Bench()
    async with listening(bench) as client:
        for n in range(3):
            await call(client, f"h{n}", "Heartbeat", {})
            assert (await answer(client))[:2] == [3, f"h{n}"]
    assert bench.ran == [("Heartbeat", False, "NOW1")] * 3


async def test_a_handler_that_suspends_is_finished_before_the_next_call_is_read() -> None:
    """OCPP-J §4.1.1: the charger's CALLs are handled one at a time and answered in order;
    what arrives while a handler waits is read after its answer."""
    bench = Bench()
    async with listening(bench) as client:
        await call(client, "s1", "StatusNotification", _status())
        await call(client, "h1", "Heartbeat", {})
        await call(client, "h2", "Heartbeat", {})
        # The Heartbeats are queued behind the waiting handler, not handled: the pong
        # comes once the server has read every frame before the ping.
        await (await client.ping())
        assert bench.ran == [("StatusNotification before", False, "NOW1")]
        bench.release.set()
        answers = [(await answer(client))[:2] for _ in range(3)]
        assert answers == [[3, "s1"], [3, "h1"], [3, "h2"]]
        # Idle again: the next CALL goes through the callback.
        await call(client, "h3", "Heartbeat", {})
        assert (await answer(client))[:2] == [3, "h3"]
    assert bench.ran == [
        ("StatusNotification before", False, "NOW1"),
        ("StatusNotification after", True, "NOW1"),
        ("Heartbeat", True, "NOW1"),
        ("Heartbeat", True, "NOW1"),
        ("Heartbeat", False, "NOW1"),
    ]


async def test_a_handler_that_fails_after_suspending_answers_internal_error() -> None:
    """Errata §3.3: as on the reader's own path, a crash is a CALLERROR InternalError."""
    bench = Bench()
    async with listening(bench) as client:
        await call(client, "d1", "DataTransfer", {"vendorId": "v"})
        bench.release.set()
        failed = await answer(client)
        assert failed[:3] == [4, "d1", "InternalError"]
        await call(client, "h1", "Heartbeat", {})
        assert (await answer(client))[:2] == [3, "h1"]


async def test_a_reply_to_our_call_arrives_through_the_callback() -> None:
    """Our CALL's answer reaches `call` as it does through `recv`."""
    bench = Bench()
    async with listening(bench) as client:
        connection = bench.connections[0]
        pending = asyncio.ensure_future(connection.call("ClearCache", {}))
        sent = orjson.loads(await asyncio.wait_for(client.recv(), 5))
        assert sent[2] == "ClearCache"
        await client.send(orjson.dumps([3, sent[1], {"status": "Accepted"}]).decode())
        assert await asyncio.wait_for(pending, 5) == {"status": "Accepted"}


async def test_a_connection_closed_while_a_handler_waits_ends_serve() -> None:
    """The charger leaves while its CALL is handled: serve ends once the handler has, and
    the answer is not sent."""
    bench = Bench()
    async with listening(bench) as client:
        await call(client, "s1", "StatusNotification", _status())
        await bench.suspended.wait()
        await client.close()
        bench.release.set()
        await asyncio.wait_for(bench.finished.wait(), 5)
        await asyncio.wait_for(bench.connections[0].websocket.disconnected, 5)  # type: ignore[attr-defined]
    assert [action for action, _, _ in bench.ran] == [
        "StatusNotification before",
        "StatusNotification after",
    ]


@pytest.fixture(autouse=True)
def _no_leftover_context() -> None:
    structlog.contextvars.clear_contextvars()


def _status() -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
