"""The API's own event loop, and the way back to the loop the chargers live on.

The HTTP API runs on a loop of its own, in its own thread (csms/app.py), so that API
clients cannot starve chargers: 50 clients polling `GET /charge-points` used to push a
charger's Boot from 30 ms to several seconds (issue 13, docs/architecture.md). Reads run
on the API's loop with their own database engine; anything that changes state (the
writer, the flows, a charger's connection) lives on the chargers' loop, the *home* loop,
and is reached through `Home.run`, which runs a coroutine there and waits for it here.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Home:
    """The chargers' loop, once known; until then (and on it) calls run in place."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def here(self) -> bool:
        """Whether the running loop is the home loop (or none was set)."""
        return self.loop is None or asyncio.get_running_loop() is self.loop

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run `make()` on the home loop and return its result here.

        Cancelling the wait (a client went away) cancels the work on the home loop too.
        """
        if self.here():
            return await make()
        assert self.loop is not None

        async def call() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        return await asyncio.wrap_future(future)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Call a plain function on the home loop (it may touch that loop's objects)."""
        if self.here():
            callback()
        else:
            assert self.loop is not None
            self.loop.call_soon_threadsafe(callback)


class AtHome:
    """Stands in for an object of the home loop: its coroutine methods run there.

    Plain attributes and methods are read directly (configuration, counters); only what
    awaits is sent home, since that is what touches the loop's sockets, queues and locks.
    """

    def __init__(self, target: Any, home: Home) -> None:
        self._target = target
        self._home = home

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not inspect.iscoroutinefunction(value):
            return value
        home = self._home

        async def at_home(*args: Any, **kwargs: Any) -> Any:
            return await home.run(lambda: value(*args, **kwargs))

        return at_home


class ChargersAtHome:
    """The live-connection registry, read from the API's loop; a connection's `close`
    runs on the home loop."""

    def __init__(self, chargers: Any, home: Home) -> None:
        self._chargers = chargers
        self._home = home

    def __contains__(self, charge_point_id: object) -> bool:
        return charge_point_id in self._chargers

    def __len__(self) -> int:
        return len(self._chargers)

    def get(self, charge_point_id: str, /) -> Any:
        connection = self._chargers.get(charge_point_id)
        return None if connection is None else AtHome(connection, self._home)
