"""A small WebDriver BiDi client: Firefox driven over its own WebSocket, no geckodriver.

Firefox speaks WebDriver BiDi natively (https://w3c.github.io/webdriver-bidi/, "the spec"
below): started with `--remote-debugging-port`, it serves the protocol at
`ws://127.0.0.1:<port>/session`. This module starts one headless Firefox on a fresh profile,
opens a session and exchanges the spec's JSON messages; the page-level helpers the tests use
are in tests/browser/firefox_page.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

# Firefox prints this once the remote agent listens; with port 0 it picked a free port itself,
# so no other process can take it between choosing and binding.
_LISTENING = re.compile(rb"WebDriver BiDi listening on (ws://[\d.]+:\d+)")
_STARTUP = 60.0  # seconds: a cold start on a loaded 2-core machine


class BiDiError(Exception):
    """An error response (spec "Errors"): `error` is the code, e.g. "no such element"."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class BiDi:
    """One session on one WebSocket: commands matched to their responses by id, and events.

    Spec "Handle an incoming message" / "Transport": a command is {id, method, params}; its
    response is {type: "success", id, result} or {type: "error", id, error, message}; an event
    is {type: "event", method, params}, sent only for the modules subscribed to.
    """

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[tuple[str, asyncio.Queue[dict[str, Any]]]] = []
        self.events: list[dict[str, Any]] = []  # every event received, in order: {method, params}
        self._reader = asyncio.create_task(self._read())

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; an error response raises BiDiError."""
        command_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = answer
        message = {"id": command_id, "method": method, "params": params}
        await self._socket.send(json.dumps(message))
        try:
            return await answer
        finally:
            del self._waiting[command_id]

    @asynccontextmanager
    async def listening(self, method: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue of the `method` events' params that arrive while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (method, queue)
        self._listeners.append(entry)
        try:
            yield queue
        finally:
            self._listeners.remove(entry)

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                self._dispatch(json.loads(raw))
        finally:  # the socket closed: nobody waits forever for an answer
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_exception(BiDiError("connection closed", "Firefox went away"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "event":
            self.events.append(message)
            for method, queue in self._listeners:
                if method == message["method"]:
                    queue.put_nowait(message["params"])
            return
        answer = self._waiting.get(message.get("id", -1))
        if answer is None or answer.done():
            return
        if message.get("type") == "success":
            answer.set_result(message["result"])
        else:
            answer.set_exception(BiDiError(message["error"], message.get("message", "")))

    async def close(self) -> None:
        await self._socket.close()
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def firefox(executable: str) -> AsyncIterator[BiDi]:
    """A headless Firefox on a fresh temporary profile with a BiDi session (spec
    `session.new`); the whole process group is killed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="csms-firefox-") as profile:
        process = await asyncio.create_subprocess_exec(
            *(executable, "--headless", "--no-remote", "--profile", profile),
            *("--remote-debugging-port=0", "about:blank"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its content processes share its group: one kill ends all
        )
        assert process.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(_STARTUP):
                url = await _announced_url(process.stderr)
            drain = asyncio.create_task(_drain(process.stderr))
            socket = await connect(f"{url}/session", max_size=None)
            session = BiDi(socket)
            try:
                await session.command("session.new", capabilities={})
                yield session
            finally:
                await session.close()
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            if drain is not None:
                drain.cancel()
                with suppress(asyncio.CancelledError):
                    await drain


async def _announced_url(stderr: asyncio.StreamReader) -> str:
    """The WebSocket URL Firefox prints on stderr once its remote agent listens."""
    seen: list[bytes] = []
    while line := await stderr.readline():
        if found := _LISTENING.search(line):
            return found.group(1).decode()
        seen.append(line)
    raise RuntimeError(f"Firefox exited before listening: {b''.join(seen[-20:]).decode()}")


async def _drain(stderr: asyncio.StreamReader) -> None:
    """Read Firefox's stderr so the pipe never fills up and blocks it."""
    while await stderr.read(65536):
        pass
