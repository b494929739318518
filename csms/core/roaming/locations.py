"""What a partner is shown of our locations (mod_locations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class LocationChoice:
    """One location an operator picked for a partner: None = every charger linked to it,
    now and later; a list = only those chargers' EVSEs (empty: none yet)."""

    location_id: str
    charge_point_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Selection:
    """Which locations a partner gets: `all` published ones, plus the explicit choices."""

    all_published: bool
    choices: Mapping[str, LocationChoice]


def is_published(location: Mapping[str, Any]) -> bool:
    """A location meant to be shared: `publish` true, or limited to `publish_allowed_to`.

    mod_locations §Location Object: with publish=false "only tokens identified in the field
    publish_allowed_to are allowed to be shown this Location"; the partner applies that
    rule, so such a location is sent with its flags. One with publish=false and no list
    is private (mod_locations §Flow and Lifecycle: "SHALL NOT be published via OCPI")
    unless the operator picks it explicitly.
    """
    return bool(location.get("publish")) or bool(location.get("publish_allowed_to"))


def is_selected(selection: Selection, location: Mapping[str, Any]) -> bool:
    """Whether the partner is to hold this location now."""
    if location["id"] in selection.choices:
        return True
    return selection.all_published and is_published(location)


def location_for_partner(
    location: Mapping[str, Any],
    *,
    choice: LocationChoice | None,
    charger_by_evse: Mapping[str, str],
    sent: Mapping[str, Any] | None,
    now: datetime | str,
) -> dict[str, Any]:
    """The Location to PUT to a partner: its chosen EVSEs, and those it held before marked
    REMOVED.

    mod_locations §Flow and Lifecycle: "When the CPO wants to delete an EVSE ..., they MUST
    update the EVSE's status field to REMOVED"; a PUT replaces the whole Location, so an
    EVSE sent before and not chosen now goes in with status REMOVED rather than silently
    missing. `charger_by_evse` maps each current EVSE uid to its charge point.
    """
    allowed = None if choice is None else set(choice.charge_point_ids or ())
    evses = [
        evse
        for evse in location.get("evses", ())
        if allowed is None or charger_by_evse.get(evse["uid"]) in allowed
    ]
    return _with_removed(location, evses=evses, sent=sent, now=now)


def withdrawn_location(
    location: Mapping[str, Any], *, sent: Mapping[str, Any] | None, now: datetime | str
) -> dict[str, Any]:
    """The last PUT of a location the partner should no longer show: every EVSE REMOVED.

    mod_locations §Flow and Lifecycle: "A Location without any valid EVSE object can be
    considered expired and should no longer be displayed"; there is no DELETE.
    """
    return _with_removed(location, evses=[], sent=sent, now=now)


def _with_removed(
    location: Mapping[str, Any],
    *,
    evses: Sequence[Mapping[str, Any]],
    sent: Mapping[str, Any] | None,
    now: datetime | str,
) -> dict[str, Any]:
    kept = {evse["uid"] for evse in evses}
    removed = [
        {**evse, "status": "REMOVED", "last_updated": now}
        for evse in (sent or {}).get("evses", ())
        if evse["uid"] not in kept and evse.get("status") != "REMOVED"
    ]
    # Already REMOVED before: repeat it, so the partner keeps seeing it gone.
    gone = [
        evse
        for evse in (sent or {}).get("evses", ())
        if evse["uid"] not in kept and evse.get("status") == "REMOVED"
    ]
    out = {key: value for key, value in location.items() if key != "evses"}
    all_evses = [*evses, *removed, *gone]
    if all_evses:
        out["evses"] = all_evses
    if removed:
        out["last_updated"] = now
    return out


def evse_uids(location: Mapping[str, Any] | None) -> frozenset[str]:
    """The uids of the EVSEs a Location holds that are not REMOVED."""
    if location is None:
        return frozenset()
    return frozenset(
        evse["uid"] for evse in location.get("evses", ()) if evse.get("status") != "REMOVED"
    )


def latest_update(location: Mapping[str, Any]) -> datetime:
    """The Location's last_updated as mod_locations §GET List needs it: "If an EVSE is
    updated, also the 'parent' Location's last_updated field needs to be updated"."""
    times = [location["last_updated"]]
    for evse in location.get("evses", ()):
        times.append(evse["last_updated"])
        times.extend(connector["last_updated"] for connector in evse.get("connectors", ()))
    return max(datetime.fromisoformat(text) for text in times)
