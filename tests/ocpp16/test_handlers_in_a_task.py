"""A handler always runs inside a task, on picows as on websockets.

Handlers reach code that needs `asyncio.current_task()` from their first step on:
`asyncio.timeout`, which SQLAlchemy's pool uses while it waits for a free connection,
raises "Timeout should be used inside a task" anywhere else. An attempt to answer picows
frames in the socket's callback (bench/analysis.md, P1, 2026-12-07 evening) ran that first
step outside any task, and under load MeterValues were answered with InternalError. This
runs a real picows listener and a websockets client, with handlers that time themselves
out as the pool does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
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


class Handlers:
    """Handlers that note the task they ran in, one of them waiting before it answers."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.served = asyncio.Event()
        self.by_action: dict[str, Handler] = {
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status_notification,
        }

    async def heartbeat(self, ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
        self.tasks.append(asyncio.current_task())
        # Entering the timeout is what needs a task, as in SQLAlchemy's pool wait.
        async with asyncio.timeout(5):  # noqa: ASYNC100
            return {"currentTime": "2026-12-07T00:00:00.000Z"}

    async def status_notification(
        self, ctx: ChargerContext, payload: dict[str, Any]
    ) -> dict[str, Any]:
        self.tasks.append(asyncio.current_task())
        self.waiting.set()
        async with asyncio.timeout(5):
            await self.release.wait()
        self.tasks.append(asyncio.current_task())
        return {}

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
            rpc=RpcSession(validators=VALIDATORS, supported=self.by_action.keys(), accepted=True),
            handlers=self.by_action,
            call_timeout=5,
        )
        self.served.set()
        await connection.serve()


async def admit(peer: Peer, request: Request) -> str:
    return request.path.rsplit("/", 1)[-1]


@asynccontextmanager
async def picows_listener(handlers: Handlers) -> AsyncIterator[ClientConnection]:
    server = PicowsServer(
        admit=admit,
        serve=handlers.serve,
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
            f"ws://127.0.0.1:{port}/ocpp/TASK1", subprotocols=[SUBPROTOCOL]
        ) as client:
            await asyncio.wait_for(handlers.served.wait(), 5)  # serve starts after the 101
            yield client
    finally:
        server.close()
        await server.wait_closed()


async def exchange(client: ClientConnection, unique_id: str, action: str, payload: Any) -> Any:
    await client.send(orjson.dumps([2, unique_id, action, payload]).decode())
    return orjson.loads(await asyncio.wait_for(client.recv(), 5))


async def test_handlers_run_in_a_task_on_picows() -> None:
    handlers = Handlers()
    async with picows_listener(handlers) as client:
        for n in range(3):
            assert (await exchange(client, f"h{n}", "Heartbeat", {}))[:2] == [3, f"h{n}"]
        waiting = asyncio.ensure_future(
            exchange(
                client,
                "s1",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
            )
        )
        await asyncio.wait_for(handlers.waiting.wait(), 5)
        handlers.release.set()
        assert (await asyncio.wait_for(waiting, 5))[:2] == [3, "s1"]
    assert len(handlers.tasks) == 5
    assert all(task is not None for task in handlers.tasks)
    # One connection, one task: the same one before and after the handler waited.
    assert len(set(handlers.tasks)) == 1
