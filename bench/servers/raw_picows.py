"""Reference, the faster ceiling: the raw server on `picows` (a Cython WebSocket layer for
asyncio): orjson, a fixed CALLRESULT for every CALL, no validation, nothing stored.

    python bench/servers/raw_picows.py --port 9000 [--no-uvloop]
"""

from __future__ import annotations

import argparse

import orjson
from _common import fixed_answer, run
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)


class Charger(WSListener):  # type: ignore[misc]
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            message = orjson.loads(frame.get_payload_as_bytes())
            if message[0] == 2:
                transport.send(WSMsgType.TEXT, fixed_answer(message[1], message[2]))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def upgrade(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Protocol": "ocpp1.6"})
    return WSUpgradeResponseWithListener(response, Charger())


async def start(args: argparse.Namespace) -> object:
    return await ws_create_server(upgrade, args.host, args.port, backlog=4096)


if __name__ == "__main__":
    run(start, __doc__.splitlines()[0])
