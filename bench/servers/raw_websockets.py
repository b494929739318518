"""Reference, the ceiling: `websockets` + orjson (+ uvloop) answering every CALL with a
fixed CALLRESULT, no validation, nothing stored.

    python bench/servers/raw_websockets.py --port 9000 [--no-uvloop]
"""

from __future__ import annotations

import argparse

import orjson
from _common import fixed_answer, run
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol


async def handler(websocket: ServerConnection) -> None:
    try:
        async for message in websocket:
            frame = orjson.loads(message)
            if frame[0] == 2:
                await websocket.send(fixed_answer(frame[1], frame[2]), text=True)
    except ConnectionClosed:
        pass


async def start(args: argparse.Namespace) -> object:
    return await serve(
        handler,
        args.host,
        args.port,
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
        max_queue=None,
        backlog=4096,
    )


if __name__ == "__main__":
    run(start, __doc__.splitlines()[0])
