"""Pushing our objects to partners: what collapses, when to retry, and when a PATCH
falls back to a PUT."""

from __future__ import annotations

from enum import StrEnum


class PushKind(StrEnum):
    """What one queued push does at the partner."""

    # Bring the partner's copy of a location in line: PUT it, or withdraw it (all EVSEs
    # REMOVED) when the partner is no longer to hold it; built when sent, so always latest.
    LOCATION_PUT = "location_put"
    EVSE_PATCH = "evse_patch"
    SESSION_PUT = "session_put"
    SESSION_PATCH = "session_patch"
    CDR_POST = "cdr_post"
    COMMAND_RESULT = "command_result"
    # Bring the partner's copy of a tariff in line: PUT the current Tariff, or DELETE it
    # when csms no longer has it (mod_tariffs §Receiver Interface); built when sent.
    TARIFF_PUT = "tariff_put"


def collapsed_kind(pending: PushKind | None, new: PushKind) -> PushKind:
    """The kind a push keeps when it replaces a pending one for the same object.

    Only the latest state of an object matters where OCPI allows it (a Location, an EVSE
    status, a Session), so a newer push replaces an unsent one. A Session the partner has
    not received yet stays a PUT: a PATCH on an object it does not hold fails
    (transport_and_format §PATCH).
    """
    if pending is PushKind.SESSION_PUT and new is PushKind.SESSION_PATCH:
        return PushKind.SESSION_PUT
    return new


COLLAPSIBLE = frozenset(
    {
        PushKind.LOCATION_PUT,
        PushKind.EVSE_PATCH,
        PushKind.SESSION_PUT,
        PushKind.SESSION_PATCH,
        PushKind.TARIFF_PUT,
    }
)
"""Kinds whose pending push a newer one for the same object replaces. A CDR is final
(mod_cdrs §Flow and Lifecycle: "it cannot be changed or replaced once sent") and a
CommandResult answers one command: those are never collapsed."""


def retry_delay(attempts: int, *, ceiling: float) -> float:
    """Seconds before the next try after `attempts` failures: 1, 2, 4, ... up to `ceiling`."""
    return float(min(ceiling, 2.0 ** max(attempts - 1, 0)))


def falls_back_to_put(kind: PushKind, *, http_status: int, ocpi_status: int | None) -> bool:
    """Whether a refused PATCH is sent again as a PUT of the whole object.

    transport_and_format §PATCH: "In case a PATCH request fails, the client is expected to
    call the GET method ... If the object doesn't exist, the client should do a PUT";
    csms skips the GET and PUTs the latest state, which is always right.
    """
    if kind not in (PushKind.EVSE_PATCH, PushKind.SESSION_PATCH):
        return False
    return http_status == 404 or (ocpi_status is not None and 2000 <= ocpi_status <= 2999)
