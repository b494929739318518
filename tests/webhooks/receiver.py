"""A real webhook receiver for the tests: an ASGI app served by uvicorn on a free port.

It records every POST and answers as told per path (a status, a hang past csms's read
timeout, a redirect); `verified` checks each delivery with the Standard Webhooks
reference library, as an integrator would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from standardwebhooks import Webhook

from tests.support import MS, free_port

Scope = dict[str, Any]
Message = dict[str, Any]
HANG = -1  # answer nothing until the test ends: csms times out


@dataclass(frozen=True)
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")

    def verified(self, secret: str) -> dict[str, Any]:
        """The event, once the reference library accepts the signature with `secret`."""
        parsed: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return parsed


@dataclass
class Receiver:
    """Records deliveries; answers 200 unless `answer` queued something else for a path."""

    deliveries: list[Delivery] = field(default_factory=list)
    plans: dict[str, deque[int | str]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def answer(self, path: str, *answers: int | str) -> None:
        """Answer the next POSTs to `path` with these, in turn: a status, HANG, or
        ``"redirect:<url>"``; then 200 again."""
        self.plans.setdefault(path, deque()).extend(answers)

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def until(
        self, count: int, *, path: str, where: Callable[[Delivery], bool] = lambda _: True
    ) -> list[Delivery]:
        """Wait until `count` deliveries to `path` (that satisfy `where`) have arrived."""
        async with asyncio.timeout(10_000 * MS):
            while len(chosen := [d for d in self.at(path) if where(d)]) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return chosen

    async def until_distinct(self, count: int, *, path: str) -> list[str]:
        """Wait until `count` different webhook-ids reached `path`; return them in the order
        they first arrived."""
        async with asyncio.timeout(20_000 * MS):
            while len(ids := list(dict.fromkeys(d.webhook_id for d in self.at(path)))) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return ids

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[..., Any]
    ) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        plan = self.plans.get(path)
        answer: int | str = plan.popleft() if plan else 200
        self.deliveries.append(Delivery(path=path, headers=headers, body=body))
        self.arrived.set()
        if answer == HANG:
            await self.release.wait()
            answer = 503
        extra: list[tuple[bytes, bytes]] = []
        if isinstance(answer, str):
            extra = [(b"location", answer.removeprefix("redirect:").encode())]
            answer = 307
        await send(
            {
                "type": "http.response.start",
                "status": answer,
                "headers": [(b"content-type", b"text/plain"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": f"answer {answer}".encode()})


@asynccontextmanager
async def serving(receiver: Receiver | None = None, **options: Any) -> AsyncIterator[Receiver]:
    """The receiver on 127.0.0.1 at a free port, stopped afterwards; `options` go to
    uvicorn (e.g. ssl_certfile and ssl_keyfile for https)."""
    receiver = receiver or Receiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            receiver,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            **options,
        )
    )
    with _no_signal_handlers(server):
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10_000 * MS):
            while not server.started:  # noqa: ASYNC110 uvicorn has only this flag
                await asyncio.sleep(10 * MS)
        scheme = "https" if "ssl_certfile" in options else "http"
        receiver.url = f"{scheme}://127.0.0.1:{port}"
        try:
            yield receiver
        finally:
            receiver.release.set()
            server.should_exit = True
            await task


@contextlib.contextmanager
def _no_signal_handlers(server: uvicorn.Server) -> Iterator[None]:
    # The test process owns its signals, as csms's own API server does (csms/app.py).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
    yield
