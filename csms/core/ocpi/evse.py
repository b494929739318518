"""EVSE status and identifiers: how an OCPP connector appears to OCPI partners."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from csms.core.ocpi.enums import OcpiEvseStatus

# --- status mapping (docs/events.md, "Mapping decisions") ------------------------------------

_BY_OCPP_STATUS = {
    "Available": OcpiEvseStatus.AVAILABLE,
    "Preparing": OcpiEvseStatus.CHARGING,
    "Charging": OcpiEvseStatus.CHARGING,
    "SuspendedEV": OcpiEvseStatus.CHARGING,
    "SuspendedEVSE": OcpiEvseStatus.CHARGING,
    "Finishing": OcpiEvseStatus.BLOCKED,
    "Reserved": OcpiEvseStatus.RESERVED,
    "Unavailable": OcpiEvseStatus.INOPERATIVE,
    "Faulted": OcpiEvseStatus.OUTOFORDER,
}


def ocpi_evse_status(ocpp_status: str | None, *, online: bool = True) -> OcpiEvseStatus:
    """The OCPI EVSE status for a connector's OCPP status; UNKNOWN when unknown or offline."""
    if not online or ocpp_status is None:
        return OcpiEvseStatus.UNKNOWN
    return _BY_OCPP_STATUS.get(ocpp_status, OcpiEvseStatus.UNKNOWN)


def build_evse_status(
    *, evse_uid: str, ocpp_status: str | None, online: bool, last_updated: datetime
) -> dict[str, Any]:
    """The ``ocpi`` part of ``evse.status`` data: ``{evse_uid, status, last_updated}``.

    ``status`` and ``last_updated`` are the OCPI EVSE PATCH body (mod_locations §PATCH,
    examples/location_patch_example_status.json); ``evse_uid`` says which EVSE it is.
    """
    return {
        "evse_uid": evse_uid,
        "status": ocpi_evse_status(ocpp_status, online=online),
        "last_updated": last_updated,
    }


# --- identifiers ----------------------------------------------------------------------------

_CI_STRING = re.compile(r"[\x20-\x7e]+")  # types §CiString: printable ASCII only
_EMI3_EVSE_ID = re.compile(r"[A-Z]{2}\*[A-Z0-9]{3}\*E[A-Z0-9*]{1,30}")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


def format_evse_uid(charge_point_id: str, connector_id: int) -> str:
    """The OCPI ``EVSE.uid`` of one OCPP connector: ``{chargePointId}*{connectorId}``.

    One "virtual" EVSE per OCPP connector, as OCPI 2.2.1 mod_locations §"OCPP 1.x Charge
    Points with multiple connectors per EVSE" asks (docs/events.md, "Mapping decisions").

    Raises:
        ValueError: the result is not a CiString(36) (too long, or not printable ASCII);
            provision an explicit uid for such chargers.
    """
    if connector_id < 1:
        raise ValueError(f"connector {connector_id} is not an EVSE (OCPP 1.6 §4.9)")
    uid = f"{charge_point_id}*{connector_id}"
    if len(uid) > 36 or not _CI_STRING.fullmatch(uid):
        raise ValueError(f"evse uid {uid!r} is not a CiString(36)")
    return uid


_UID_NAMESPACE = uuid.UUID("4f0c7d3e-2a51-4c1e-9a8e-6f1f2b3c4d5e")


def evse_uid_or_derived(charge_point_id: str, connector_id: int) -> str:
    """`format_evse_uid`, or a stable uid derived from it (a UUID 5, 36 characters) when
    the identity is too long for a CiString(36): an OCPP identity may have 48 characters
    (OCPP-J §3.1.1), so Locations, statuses, Sessions and CDRs all name such a charger's
    EVSE the same derived way."""
    try:
        return format_evse_uid(charge_point_id, connector_id)
    except ValueError:
        return str(uuid.uuid5(_UID_NAMESPACE, f"{charge_point_id}*{connector_id}"))


def format_evse_id(
    country_code: str, party_id: str, *, identity: str, connector_id: int | None = None
) -> str:
    """An eMI3/ISO 15118 EVSE ID ``CC*PPP*E<identity>[*<connector>]``.

    The same value serves as OCPI ``evse_id`` (CiString(48)) and OICP ``EvseID``
    (03_CPO_Data_Types §EvseIDType, ISO form), as docs/events.md, "Mapping decisions",
    states. The identity is upper-cased and every run of characters outside ``[A-Z0-9]``
    becomes one ``*`` separator, so identities that differ only in punctuation map to the
    same ID: provision explicit IDs for those.

    Raises:
        ValueError: the country is not two letters, the party not three letters or
            digits, or the result breaks the EvseID pattern (e.g. longer than 30
            characters after the ``E``).
    """
    country = country_code.upper()
    party = party_id.upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ValueError(f"country code {country_code!r} is not ISO 3166 alpha-2")
    if not re.fullmatch(r"[A-Z0-9]{3}", party):
        raise ValueError(f"party id {party_id!r} is not three letters or digits")
    instance = _NOT_ALNUM.sub("*", identity.upper()).strip("*")
    if connector_id is not None:
        instance = f"{instance}*{connector_id}"
    evse_id = f"{country}*{party}*E{instance}"
    if not _EMI3_EVSE_ID.fullmatch(evse_id):
        raise ValueError(f"evse id {evse_id!r} does not match the eMI3 EvseID pattern")
    return evse_id
