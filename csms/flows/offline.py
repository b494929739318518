"""The offline rules: a charger gone past the grace period has UNKNOWN EVSEs, and later is
long_term_unavailable (docs/events.md, "Network status"). A task applies them on a timer,
from what the database says, so they hold after a restart too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.session import Party
from csms.errors import StoreError
from csms.events import build
from csms.store import chargers, outbox
from csms.store.db import Database

log = structlog.get_logger("csms.network")


async def apply_offline_rules(
    session: AsyncSession,
    *,
    party: Party,
    now: datetime,
    grace: timedelta,
    long_term: timedelta,
    online: Container[str],
) -> int:
    """Move offline chargers on a stage, with their events; returns how many moved.

    Past `grace` offline, a charger's EVSEs are UNKNOWN; past `long_term`, its network status
    is long_term_unavailable. A charger connected again (`online`) is left alone.
    """
    moved = 0
    for charger, connectors in await chargers.offline_due(
        session, stage=1, offline_since=now - grace
    ):
        if charger.id in online:
            continue
        events = [
            build.evse_status(
                charger.id,
                party=party,
                connector_id=c.connector_id,
                ocpp_status=c.status,
                error_code=c.error_code,
                info=c.info,
                vendor_error_code=c.vendor_error_code,
                vendor_error_text=None,
                online=False,
                at=now,
            )
            for c in connectors
            if c.connector_id >= 1
        ]
        await outbox.add_events(session, events, now=now)
        await chargers.set_offline_stage(session, charge_point_id=charger.id, stage=1)
        moved += 1
    for charger, _ in await chargers.offline_due(session, stage=2, offline_since=now - long_term):
        if charger.id in online:
            continue
        event = build.network_status(charger.id, at=now, status="long_term_unavailable")
        await outbox.add_events(session, [event], now=now)
        await chargers.set_offline_stage(session, charge_point_id=charger.id, stage=2)
        moved += 1
    return moved


class OfflineWatch:
    """Checks the offline chargers a few times per grace period."""

    def __init__(
        self,
        *,
        database: Database,
        party: Party,
        clock: Callable[[], datetime],
        grace: float,
        long_term: float,
        online: Container[str],
    ) -> None:
        self._database = database
        self._party = party
        self._clock = clock
        self._grace = timedelta(seconds=grace)
        self._long_term = timedelta(seconds=long_term)
        self._online = online
        # A rule fires at most a quarter of the grace late (30 s at most).
        self._period = min(max(min(grace, long_term) / 4, 0.05), 30.0)

    async def run(self) -> None:
        while True:
            try:
                moved = await self._database.writer.submit(self._apply)
            except StoreError as exc:
                log.warning("offline_watch_paused", error=repr(exc))
            else:
                if moved:
                    log.info("offline_rules_applied", chargers=moved)
            await asyncio.sleep(self._period)

    async def _apply(self, session: AsyncSession) -> int:
        return await apply_offline_rules(
            session,
            party=self._party,
            now=self._clock(),
            grace=self._grace,
            long_term=self._long_term,
            online=self._online,
        )
