"""Commits seen across nodes: PostgreSQL LISTEN/NOTIFY on one channel (cluster mode).

A node's writer commits events for every partition, but each partition is published by
one node, usually another. Without a signal that node would only find them at its next
poll; with it, it looks within milliseconds (docs/deployment.md, "The outbox relay").
Notifications are coalesced: at most one per COALESCE seconds per node.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import asyncpg
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger("csms.cluster")

CHANNEL = "csms_outbox"
COALESCE = 0.005


class CommitSignal:
    """Sends a NOTIFY after local commits and calls `listeners` on every one received."""

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pending = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []
        self._rng = random.Random()

    def committed(self) -> None:
        """The writer committed (a writer listener): tell the other nodes."""
        self._pending.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._serve()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                delay = min(10.0, 0.2 * 2 ** min(failures, 6)) * (0.5 + self._rng.random() / 2)
                log.warning("commit_signal_lost", error=repr(exc), retry_in=round(delay, 2))
                # Meanwhile the partition publishers still poll (IDLE_POLL).
                await asyncio.sleep(delay)

    async def _serve(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        try:
            await connection.add_listener(CHANNEL, self._heard)
            log.info("commit_signal_listening", channel=CHANNEL)
            while True:
                await self._pending.wait()
                self._pending.clear()
                await connection.execute(f"NOTIFY {CHANNEL}")
                await asyncio.sleep(COALESCE)
        finally:
            await connection.close()

    def _heard(self, *_: object) -> None:
        for listener in self.listeners:
            listener()
