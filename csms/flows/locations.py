"""Locations: the operator's OCPI Location data, published as `location.updated` on change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.session import Party
from csms.events import build
from csms.store import locations, outbox
from csms.store.db import Database
from csms.store.locations import Online
from csms.store.tables import Location


class LocationFlows:
    """Create, replace, read and delete locations; EVSEs come from the linked chargers."""

    def __init__(self, *, database: Database, party: Party, online: Online) -> None:
        self._database = database
        self._party = party
        self._online = online

    async def put(
        self, *, location_id: str, data: dict[str, Any], now: datetime
    ) -> tuple[bool, dict[str, Any]]:
        """Create or replace a location; returns (created, the full OCPI Location).

        Raises:
            StoreError: the database failed; nothing changed.
        """

        async def job(session: AsyncSession) -> tuple[bool, dict[str, Any]]:
            created = await locations.upsert_location(
                session, location_id=location_id, data=data, now=now
            )
            row = await locations.get_location(session, location_id)
            assert row is not None
            location = await self._full(session, row)
            await outbox.add_events(session, [build.location_updated(location, at=now)], now=now)
            return created, location

        outcome: tuple[bool, dict[str, Any]] = await self._database.writer.submit(job)
        return outcome

    async def get(self, location_id: str) -> dict[str, Any] | None:
        """The OCPI Location with live EVSE statuses, or None."""

        async def query(session: AsyncSession) -> dict[str, Any] | None:
            row = await locations.get_location(session, location_id)
            return None if row is None else await self._full(session, row)

        return await self._database.read(query)

    async def list(self, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of OCPI Locations and the total count."""

        async def query(session: AsyncSession) -> tuple[list[dict[str, Any]], int]:
            rows, total = await locations.list_locations(session, limit=limit, offset=offset)
            return [await self._full(session, row) for row in rows], total

        return await self._database.read(query)

    async def delete(self, location_id: str) -> bool:
        """Remove a location and unlink its chargers; False when there was none."""
        deleted: bool = await self._database.writer.submit(
            lambda session: locations.delete_location(session, location_id=location_id)
        )
        return deleted

    async def _full(self, session: AsyncSession, row: Location) -> dict[str, Any]:
        assert row.last_updated is not None
        chargers = await locations.chargers_at(session, row.id, online=self._online)
        return build.ocpi_location(
            location_id=row.id,
            data=row.data,
            last_updated=row.last_updated,
            party=self._party,
            chargers=chargers,
        )
