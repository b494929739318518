"""csms's protocol path without storage (P1): csms's own connection loop
(`csms.ocpp16.connection.ChargerConnection`), its sans-I/O RPC session (`RpcSession`: orjson,
jsonschema-rs validation of every CALL, the boot gate, repeat detection) and its WebSocket
settings, with handlers that answer Heartbeat, BootNotification, MeterValues and
StartTransaction as csms does (MeterValues' sampled values are parsed as csms parses them)
but store nothing and emit no events.

    python bench/servers/csms_protocol.py --port 9000 [--no-uvloop] [--transport picows]

With `--transport picows` the same loop runs on csms's picows transport
(`csms.ocpp16.transport_picows`), upgrades admitted without a database.
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from _common import run
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from csms.app import utc_now
from csms.core.clock import format_utc
from csms.ocpp16.connection import ChargerConnection
from csms.ocpp16.context import ChargerContext, Handler, Services
from csms.ocpp16.convert import samples
from csms.ocpp16.picows_socket import PicowsOptions
from csms.ocpp16.rpc import RpcSession
from csms.ocpp16.schemas import load_validators
from csms.ocpp16.server import LISTEN_BACKLOG, SUBPROTOCOL, _select_subprotocol
from csms.ocpp16.sockets import OcppSocket, Peer
from csms.ocpp16.transport_picows import PicowsServer

_transactions = itertools.count(1)


async def on_boot_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    ctx.accepted = True
    return {"status": "Accepted", "currentTime": format_utc(utc_now()), "interval": 300}


async def on_heartbeat(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": format_utc(utc_now())}


async def on_meter_values(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    samples(payload["meterValue"], received=utc_now())
    return {}


async def on_status_notification(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {}


async def on_start_transaction(ctx: ChargerContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"transactionId": next(_transactions), "idTagInfo": {"status": "Accepted"}}


HANDLERS: dict[str, Handler] = {
    "BootNotification": on_boot_notification,
    "Heartbeat": on_heartbeat,
    "MeterValues": on_meter_values,
    "StatusNotification": on_status_notification,
    "StartTransaction": on_start_transaction,
}

VALIDATORS = load_validators()
SERVICES = Services(
    chargers=None,  # type: ignore[arg-type]
    sessions=None,  # type: ignore[arg-type]
    clock=utc_now,
    heartbeat_interval=300,
)


async def serve_charger(websocket: ServerConnection) -> None:
    assert websocket.request is not None
    await serve_identity(websocket, websocket.request.path.rstrip("/").rsplit("/", 1)[-1])


async def admit(peer: Peer, request: Request) -> str:
    return request.path.rstrip("/").rsplit("/", 1)[-1]


async def serve_identity(websocket: OcppSocket, identity: str) -> None:
    connection = ChargerConnection(
        websocket=websocket,
        context=ChargerContext(charge_point_id=identity, services=SERVICES),
        rpc=RpcSession(validators=VALIDATORS, supported=HANDLERS.keys(), accepted=False),
        handlers=HANDLERS,
        call_timeout=30,
    )
    await connection.serve()


async def start(args: argparse.Namespace) -> object:
    if args.transport == "picows":
        return await start_picows(args)
    # The same WebSocket settings as csms.ocpp16.server.OcppServer.start.
    return await serve(
        serve_charger,
        args.host,
        args.port,
        subprotocols=[SUBPROTOCOL],
        select_subprotocol=_select_subprotocol,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=20,
        server_header="csms",
        compression=None,
    )


async def start_picows(args: argparse.Namespace) -> object:
    # The same WebSocket settings as csms.ocpp16.server.OcppServer._listen_picows.
    server = PicowsServer(
        admit=admit,
        serve=serve_identity,
        options=PicowsOptions(
            subprotocol=SUBPROTOCOL,
            max_frame_size=1024 * 1024,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=20,
            handshake_timeout=60,
        ),
    )
    await server.listen(args.host, args.port, backlog=LISTEN_BACKLOG)
    return server


if __name__ == "__main__":
    run(start, __doc__.splitlines()[0])
