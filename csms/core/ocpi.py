"""OCPP -> OCPI 2.2.1 status mapping (contract table; reference/ocpi-mapping.md)."""

from __future__ import annotations

from enum import StrEnum


class OcpiEvseStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


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
