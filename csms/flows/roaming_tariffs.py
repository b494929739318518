"""Tariffs for roaming partners (OCPI 2.2.1 mod_tariffs, csms as Sender).

Every tariff csms keeps is published: pull with GET, push with PUT when a tariff is
created or changed and DELETE when it is removed (mod_tariffs §Receiver Interface). A
push is built when it is sent, from the current tariff, so a partner back from an outage
gets the latest; what each partner holds is recorded, and the resync brings any partner
in line (a new one gets every tariff). A Location's connectors carry, in `tariff_ids`,
the tariff a roaming driver's session there would get: the EVSE's, the charger's, the
location's, or the default (docs/tariffs.md, "Which tariff a session gets": the driver's
own plan and group do not apply to another eMSP's driver). docs/ocpi.md, "Tariffs".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import format_utc
from csms.core.roaming import PushKind
from csms.events.models_ocpi import Tariff
from csms.events.models_ocpi import to_json_dict as ocpi_json
from csms.store import partners, roaming_catalog, tariffs
from csms.store.tables import TariffAssignment


def validated_tariff(data: dict[str, Any]) -> dict[str, Any]:
    """A stored Tariff through the strict 2.2.1 model, as JSON.

    Raises:
        pydantic.ValidationError: it is not a valid OCPI Tariff.
    """
    return ocpi_json(Tariff.model_validate_json(orjson.dumps(data)))


def tariff_key(tariff_id: str) -> str:
    return f"tariff:{tariff_id}"


async def tariffs_out_of_line(session: AsyncSession, partner_id: str) -> list[str]:
    """The tariffs whose copy at the partner differs from csms's: new, changed or gone."""
    current = await roaming_catalog.current_tariffs(session)
    held = await roaming_catalog.held_tariffs(session, partner_id)
    changed = [tariff_id for tariff_id, at in current.items() if held.get(tariff_id) != at]
    gone = [tariff_id for tariff_id in held if tariff_id not in current]
    return sorted(changed) + sorted(gone)


async def queue_tariff_resync(session: AsyncSession, *, partner_id: str, now: datetime) -> None:
    """Queue a tariff push for each tariff the partner does not hold as it is."""
    for tariff_id in await tariffs_out_of_line(session, partner_id):
        await partners.enqueue(
            session,
            partner_id=partner_id,
            key=tariff_key(tariff_id),
            kind=PushKind.TARIFF_PUT,
            now=now,
        )


# -- tariff_ids on connectors ----------------------------------------------------------------


def _valid_at(data: Mapping[str, Any], now: datetime) -> bool:
    """mod_tariffs §Tariff Object: start_date_time inclusive, end_date_time exclusive."""
    start, end = data.get("start_date_time"), data.get("end_date_time")
    if isinstance(start, str) and datetime.fromisoformat(start) > now:
        return False
    return not (isinstance(end, str) and datetime.fromisoformat(end) <= now)


@dataclass(frozen=True)
class ConnectorTariffs:
    """The tariffs a connector names, and since when (the assignment's last change)."""

    tariff_ids: list[str]
    since: datetime


async def roaming_tariff_ids(
    session: AsyncSession,
    *,
    location_id: str,
    evses: Iterable[tuple[str, str, int]],
    now: datetime,
) -> dict[str, ConnectorTariffs]:
    """For each (evse uid, charge point, connector): the tariff a roaming session starting
    now would get there (mod_locations §Connector Object: "Identifiers of the currently
    valid charging tariffs"): the first valid of the connector's, the charger's, the
    location's and the default assignment. An EVSE without one is left out."""
    cache: dict[str, dict[str, Any] | None] = {}

    async def valid(found: TariffAssignment | None) -> bool:
        if found is None:
            return False
        if found.tariff_id not in cache:
            row = await tariffs.get_tariff(session, found.tariff_id)
            cache[found.tariff_id] = None if row is None else row.data
        data = cache[found.tariff_id]
        return data is not None and _valid_at(data, now)

    shared = [
        await tariffs.get_assignment(session, scope="location", target=location_id),
        await tariffs.get_assignment(session, scope="default", target=""),
    ]
    out: dict[str, ConnectorTariffs] = {}
    for uid, charge_point_id, connector_id in evses:
        candidates = [
            await tariffs.get_assignment(
                session, scope="evse", target=f"{charge_point_id}*{connector}"
            )
            for connector in (connector_id, 0)
        ]
        for found in [*candidates, *shared]:
            if found is not None and await valid(found):
                assert found.updated_at is not None
                out[uid] = ConnectorTariffs(tariff_ids=[found.tariff_id], since=found.updated_at)
                break
    return out


def with_tariff_ids(
    location: dict[str, Any], named: Mapping[str, ConnectorTariffs]
) -> dict[str, Any]:
    """The Location with each EVSE's connectors carrying its `tariff_ids`; a connector's
    last_updated is no older than the assignment it names, so a pull with date_from
    finds the change (mod_locations §GET List)."""
    evses = []
    for evse in location.get("evses", ()):
        found = named.get(evse["uid"])
        if found is not None:
            connectors = [_named(connector, found) for connector in evse.get("connectors", ())]
            evse = {**evse, "connectors": connectors}
        evses.append(evse)
    return {**location, "evses": evses} if evses else location


def _named(connector: dict[str, Any], found: ConnectorTariffs) -> dict[str, Any]:
    updated = connector.get("last_updated")
    if isinstance(updated, str) and datetime.fromisoformat(updated) < found.since:
        updated = format_utc(found.since)
    return {**connector, "tariff_ids": found.tariff_ids, "last_updated": updated}


def tariff_signature(location: Mapping[str, Any] | None) -> frozenset[tuple[str, tuple[str, ...]]]:
    """Which tariffs each EVSE of a Location names: a copy whose signature differs from
    the current one is sent again (an assignment changed)."""
    if location is None:
        return frozenset()
    return frozenset(
        (evse["uid"], tuple(connector.get("tariff_ids", ())))
        for evse in location.get("evses", ())
        if evse.get("status") != "REMOVED"
        for connector in evse.get("connectors", ())
    )
