"""The offline rules: a charger gone past the grace period has UNKNOWN EVSEs, and later is
long_term_unavailable. A task applies them on a timer, from what the database says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy.exc import SQLAlchemyError

from csms.errors import StoreError
from csms.events.record import Recorder
from csms.store.db import Database

log = structlog.get_logger("csms.network")


class OfflineWatch:
    """Checks the offline chargers a few times per grace period."""

    def __init__(
        self,
        *,
        database: Database,
        recorder: Recorder,
        clock: Callable[[], datetime],
        grace: float,
        long_term: float,
        online: Container[str],
    ) -> None:
        self._database = database
        self._recorder = recorder
        self._clock = clock
        self._grace = timedelta(seconds=grace)
        self._long_term = timedelta(seconds=long_term)
        self._online = online
        # A rule fires at most a quarter of the grace late (30 s at most).
        self._period = min(max(min(grace, long_term) / 4, 0.05), 30.0)

    async def run(self) -> None:
        while True:
            try:
                moved = await self._database.writer.submit(
                    partial(
                        self._recorder.offline,
                        now=self._clock(),
                        grace=self._grace,
                        long_term=self._long_term,
                        online=self._online,
                    )
                )
            except (StoreError, SQLAlchemyError, OSError) as exc:
                log.warning("offline_watch_paused", error=repr(exc))
            else:
                if moved:
                    log.info("offline_rules_applied", chargers=moved)
            await asyncio.sleep(self._period)
