"""What the OCPP-J layer uses of a WebSocket and of a connection being upgraded.

Two transports provide them (docs/ocpp.md, "Transports"): websockets' `ServerConnection`
(the reference) and the picows transport's `PicowsSocket` and `Upgrading`
(transport_picows.py). `ChargerConnection`, `OcppServer` and the `Gatekeeper` see only
these, so neither transport can grow a rule of its own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Any, Protocol

from websockets.http11 import Request
from websockets.typing import Subprotocol

# CALLs from the charger that may wait, read, before the socket stops reading (websockets'
# max_queue): a charger that floods is slowed down by TCP, not buffered without end.
MAX_QUEUE = 16
# Bytes waiting to be sent above which a sender waits for the charger to read (websockets'
# write_limit): a charger that stops reading holds its own answers up, not csms's memory.
WRITE_LIMIT = 32 * 1024


class Peer(Protocol):
    """The connection an upgrade request came on: who, and over which transport (TLS)."""

    @property
    def transport(self) -> asyncio.BaseTransport: ...

    @property
    def remote_address(self) -> Any: ...


class OcppSocket(Protocol):
    """An upgraded OCPP-J WebSocket, as websockets' asyncio `ServerConnection` offers it.

    `recv` and `send` raise websockets' `ConnectionClosed` once the connection closes,
    with the close frames sent and received (1009: a frame over ocpp.max_frame_size).
    """

    @property
    def request(self) -> Request | None: ...

    @property
    def subprotocol(self) -> Subprotocol | None: ...

    @property
    def remote_address(self) -> Any: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes, text: bool | None = None) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Listener(Protocol):
    """A listening socket of either transport (websockets' `Server`, `PicowsServer`)."""

    @property
    def sockets(self) -> Iterable[socket.socket]: ...

    def close(self, close_connections: bool = True) -> None: ...

    async def wait_closed(self) -> None: ...
