"""The Locations a partner sees (OCPI 2.2.1 mod_locations, as Sender): its chosen locations
with the EVSEs of its chosen chargers, for pull (GET) and for push (PUT)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import format_utc
from csms.core.roaming import (
    LocationChoice,
    Selection,
    is_selected,
    latest_update,
    location_for_partner,
)
from csms.core.session import Party
from csms.events import build
from csms.events.models_ocpi import Location
from csms.events.models_ocpi import to_json_dict as ocpi_json
from csms.flows.roaming_tariffs import roaming_tariff_ids, with_tariff_ids
from csms.store import locations
from csms.store.locations import Online
from csms.store.tables import Location as LocationRow


@dataclass(frozen=True)
class EvseTarget:
    """Where an OCPI EVSE is in OCPP terms."""

    charge_point_id: str
    connector_id: int
    status: str


@dataclass(frozen=True)
class LocationState:
    """A location as csms holds it now: the full OCPI Location and whose its EVSEs are."""

    location: dict[str, Any]
    evses: dict[str, EvseTarget]

    @property
    def id(self) -> str:
        return str(self.location["id"])


class PartnerLocations:
    """Builds Locations from the store: the whole one, and one partner's view of it."""

    def __init__(self, *, party: Party, online: Online, clock: Callable[[], datetime]) -> None:
        self._party = party
        self._online = online
        self._clock = clock

    async def state(self, session: AsyncSession, row: LocationRow) -> LocationState:
        assert row.last_updated is not None
        chargers = await locations.chargers_at(session, row.id, online=self._online)
        location = build.ocpi_location(
            location_id=row.id,
            data=row.data,
            last_updated=row.last_updated,
            party=self._party,
            chargers=chargers,
        )
        targets = {
            build.evse_uid(charger.charge_point_id, connector_id): EvseTarget(
                charge_point_id=charger.charge_point_id,
                connector_id=connector_id,
                status=_status_of(location, build.evse_uid(charger.charge_point_id, connector_id)),
            )
            for charger in chargers
            for connector_id, _, _ in charger.connectors
            if connector_id >= 1
        }
        tariff_ids = await roaming_tariff_ids(
            session,
            location_id=row.id,
            evses=[(uid, t.charge_point_id, t.connector_id) for uid, t in targets.items()],
            now=self._clock(),
        )
        return LocationState(location=with_tariff_ids(location, tariff_ids), evses=targets)

    async def load(self, session: AsyncSession, location_id: str) -> LocationState | None:
        row = await locations.get_location(session, location_id)
        return None if row is None else await self.state(session, row)

    async def all(self, session: AsyncSession) -> list[LocationState]:
        """Every location, by id."""
        rows, _ = await locations.list_locations(session, limit=1_000_000, offset=0)
        return [await self.state(session, row) for row in rows]


def _status_of(location: dict[str, Any], uid: str) -> str:
    for evse in location.get("evses", ()):
        if evse["uid"] == uid:
            return str(evse["status"])
    return "UNKNOWN"


def view_for(
    state: LocationState,
    *,
    selection: Selection,
    sent: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any] | None:
    """The Location as this partner is to hold it, validated; None when it is not theirs.

    `sent` (what the partner got last) adds the EVSEs it no longer gets as REMOVED; pull
    answers pass None ("Any old information that is not specified in the response is
    considered no longer valid", mod_locations §GET List: Response Data).
    """
    if not is_selected(selection, state.location):
        return None
    choice: LocationChoice | None = selection.choices.get(state.id)
    view = location_for_partner(
        state.location,
        choice=choice,
        charger_by_evse={uid: target.charge_point_id for uid, target in state.evses.items()},
        sent=sent,
        now=format_utc(now),
    )
    # mod_locations §GET List: "If an EVSE is updated, also the 'parent' Location's
    # last_updated field needs to be updated" (our EVSE statuses move on their own).
    view["last_updated"] = format_utc(latest_update(view))
    return validated(view)


def validated(location: dict[str, Any]) -> dict[str, Any]:
    """A Location through the strict 2.2.1 model, as JSON.

    Raises:
        pydantic.ValidationError: it is not a valid OCPI Location.
    """
    return ocpi_json(Location.model_validate_json(orjson.dumps(location)))
