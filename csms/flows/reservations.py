"""Reservations: their status events, and expiry enforced by csms itself on time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.events import Event
from csms.errors import StoreError
from csms.events import build
from csms.store import outbox
from csms.store.commands import expire_reservations, next_reservation_expiry
from csms.store.db import Database
from csms.store.tables import Reservation

log = structlog.get_logger("csms.reservations")

# Re-read the earliest expiry at least this often, so another node's reservations expire too.
MAX_IDLE = 60.0
RETRY_AFTER_FAILURE = 5.0


def reservation_events(rows: Sequence[Reservation], *, at: datetime) -> list[Event]:
    """`reservation.status` for each reservation whose status changed."""
    return [
        build.reservation_status(
            row.charge_point_id,
            reservation_id=row.reservation_id,
            connector_id=row.connector_id,
            id_tag=row.id_tag,
            status=row.status,
            at=at,
        )
        for row in rows
    ]


async def expire_due(session: AsyncSession, *, now: datetime) -> list[Reservation]:
    """Expire the reservations past their expiry, with their events (a writer job)."""
    expired = await expire_reservations(session, now=now)
    await outbox.add_events(session, reservation_events(expired, at=now), now=now)
    return expired


class ReservationExpiry:
    """Sleeps until the earliest active reservation expires (or `wake` is called), then expires."""

    def __init__(self, *, database: Database, clock: Callable[[], datetime]) -> None:
        self._database = database
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
            except StoreError as exc:
                # The database is away; reservations expire as soon as it is back.
                log.warning("reservation_expiry_paused", error=repr(exc))
                await asyncio.sleep(RETRY_AFTER_FAILURE)

    async def _expire_due(self) -> None:
        now = self._clock()
        expired = await self._database.writer.submit(lambda session: expire_due(session, now=now))
        if expired:
            log.info("reservations_expired", count=len(expired))
            for listener in self.listeners:
                listener(expired)

    async def _sleep_until_next(self) -> None:
        # Cleared before reading, so a wake() during the read is not lost.
        self._wake.clear()
        earliest = await self._database.read(next_reservation_expiry)
        delay = MAX_IDLE
        if earliest is not None:
            delay = min(MAX_IDLE, max(0.0, (earliest - self._clock()).total_seconds()))
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass
