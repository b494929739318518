"""What every bench server shares: the command line, the event loop, the ready line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

# Fixed answers, encoded once: what a central system would answer, without looking.
FIXED = {
    "BootNotification": {
        "status": "Accepted",
        "currentTime": "2026-01-01T00:00:00.000Z",
        "interval": 300,
    },
    "Heartbeat": {"currentTime": "2026-01-01T00:00:00.000Z"},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
}


def fixed_answer(unique_id: str, action: str) -> bytes:
    return orjson.dumps([3, unique_id, FIXED.get(action, {})])


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use asyncio's own loop even if uvloop is there"
    )
    parser.add_argument(
        "--transport",
        choices=["websockets", "picows"],
        default="websockets",
        help="csms's WebSocket layer (csms_protocol.py only; ocpp.transport)",
    )
    return parser.parse_args()


def run(start: Callable[[argparse.Namespace], Awaitable[Any]], description: str) -> None:
    """Start the server, print 'listening <port> loop=<loop>' and serve until SIGTERM/SIGINT."""
    args = arguments(description)

    async def main() -> None:
        server = await start(args)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"listening {args.port} loop={type(loop).__module__}", flush=True)
        await stop.wait()
        close = getattr(server, "close", None)
        if close is not None:
            close()

    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main())
            return
    asyncio.run(main())


if __name__ == "__main__":
    sys.exit("a helper module, not a server")
