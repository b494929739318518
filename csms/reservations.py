"""The CSMS enforces reservation expiry itself: a task that expires them on time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from functools import partial

import structlog
from sqlalchemy.exc import SQLAlchemyError

from csms.errors import StoreError
from csms.events.record import Recorder
from csms.store.commands import next_reservation_expiry
from csms.store.db import Database
from csms.store.tables import Reservation

log = structlog.get_logger("csms.reservations")

# Re-read the earliest expiry at least this often, so another node's reservations expire too.
MAX_IDLE = 60.0
RETRY_AFTER_FAILURE = 5.0


class ReservationExpiry:
    """Sleeps until the earliest active reservation expires (or `wake` is called), then expires."""

    def __init__(
        self, *, database: Database, recorder: Recorder, clock: Callable[[], datetime]
    ) -> None:
        self._database = database
        self._recorder = recorder
        self._clock = clock
        self._wake = asyncio.Event()
        self.listeners: list[Callable[[list[Reservation]], None]] = []

    def wake(self) -> None:
        """A reservation changed: recompute when to wake up."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self._expire_due()
                await self._sleep_until_next()
            except (StoreError, SQLAlchemyError, OSError) as exc:
                # The database is away; reservations expire as soon as it is back.
                log.warning("reservation_expiry_paused", error=repr(exc))
                await asyncio.sleep(RETRY_AFTER_FAILURE)

    async def _expire_due(self) -> None:
        expired = await self._database.writer.submit(
            partial(self._recorder.expire_reservations, now=self._clock())
        )
        if expired:
            log.info("reservations_expired", count=len(expired))
            for listener in self.listeners:
                listener(expired)

    async def _sleep_until_next(self) -> None:
        # Cleared before reading, so a wake() during the read is not lost.
        self._wake.clear()
        async with self._database.sessions() as session:
            earliest = await next_reservation_expiry(session)
        delay = MAX_IDLE
        if earliest is not None:
            delay = min(MAX_IDLE, max(0.0, (earliest - self._clock()).total_seconds()))
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass
