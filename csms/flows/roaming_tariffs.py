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
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.roaming import PushKind
from csms.events.models_ocpi import Tariff
from csms.events.models_ocpi import to_json_dict as ocpi_json
from csms.store import partners, roaming_catalog, tariffs


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


async def roaming_tariff_ids(
    session: AsyncSession,
    *,
    location_id: str,
    evses: Iterable[tuple[str, str, int]],
    now: datetime,
) -> dict[str, list[str]]:
    """For each (evse uid, charge point, connector): the tariff ids a roaming session
    starting now would get there (mod_locations §Connector Object: "Identifiers of the
    currently valid charging tariffs"): the first valid of the connector's, the charger's,
    the location's and the default assignment. An EVSE without one is left out."""
    cache: dict[str, dict[str, Any] | None] = {}

    async def valid(tariff_id: str | None) -> bool:
        if tariff_id is None:
            return False
        if tariff_id not in cache:
            row = await tariffs.get_tariff(session, tariff_id)
            cache[tariff_id] = None if row is None else row.data
        data = cache[tariff_id]
        return data is not None and _valid_at(data, now)

    shared = [
        await tariffs.assigned_tariff(session, scope="location", target=location_id),
        await tariffs.assigned_tariff(session, scope="default", target=""),
    ]
    found: dict[str, list[str]] = {}
    for uid, charge_point_id, connector_id in evses:
        candidates = [
            await tariffs.assigned_tariff(
                session, scope="evse", target=f"{charge_point_id}*{connector}"
            )
            for connector in (connector_id, 0)
        ]
        for tariff_id in [*candidates, *shared]:
            if await valid(tariff_id):
                assert tariff_id is not None
                found[uid] = [tariff_id]
                break
    return found


def with_tariff_ids(location: dict[str, Any], ids: Mapping[str, list[str]]) -> dict[str, Any]:
    """The Location with each EVSE's connectors carrying its `tariff_ids`."""
    evses = []
    for evse in location.get("evses", ()):
        tariff_ids = ids.get(evse["uid"])
        if tariff_ids:
            connectors = [{**c, "tariff_ids": tariff_ids} for c in evse.get("connectors", ())]
            evse = {**evse, "connectors": connectors}
        evses.append(evse)
    return {**location, "evses": evses} if evses else location


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
