"""OCPP 1.6 -> OCPI 2.2.1: status mapping, OCPI enums, and Session/CDR builders.

Everything here is pure: no I/O, no clock, no ids of its own. Times, ids and master
data come in as arguments or as the frozen ``*Facts`` dataclasses below.

Why plain dicts: the builders return JSON-shaped dicts keyed by the spec's own field
names, with values that are ``str``, ``bool``, ``int``, ``Decimal`` (numbers, already
rounded), aware ``datetime`` (UTC) and members of the enums in this module. The strict
pydantic models in ``csms/events/models_ocpi.py`` validate them (``Session.model_validate``)
and serialise them; core must not depend on that adapter. The enums live here, not
there, because strict pydantic accepts only enum members in Python mode, so builders
and models have to share one definition.

Spec: ``ocpi/ocpi`` tag ``2.2.1`` (mod_locations, mod_sessions, mod_cdrs, mod_tariffs,
types); the mapping decisions are stated in docs/events.md, "Mapping decisions".
"""

from __future__ import annotations

from csms.core.ocpi.enums import (
    SESSION_ONLY_DIMENSIONS,
    Capability,
    CdrDimensionType,
    ConnectorFormat,
    ConnectorType,
    DayOfWeek,
    EnergySourceCategory,
    EnvironmentalImpactCategory,
    Facility,
    ImageCategory,
    OcpiEvseStatus,
    ParkingRestriction,
    ParkingType,
    PowerType,
    ReservationRestrictionType,
    SessionStatus,
    Status,
    TariffDimensionType,
    TariffType,
)
from csms.core.ocpi.evse import (
    build_evse_status,
    evse_uid_or_derived,
    format_evse_id,
    format_evse_uid,
    ocpi_evse_status,
)
from csms.core.ocpi.periods import (
    DEFAULT_PERIOD,
    MAX_CHARGING_PERIODS,
    build_charging_periods,
    hours_between,
    round_number,
    session_energy_kwh,
    wh_to_kwh,
)
from csms.core.ocpi.sessions import (
    CdrLocationFacts,
    PricedCdrParts,
    PriceFacts,
    build_cdr,
    build_cdr_location,
    build_cdr_token,
    build_price,
    build_session,
    evse_uid_of,
    session_status,
)

__all__ = [
    "DEFAULT_PERIOD",
    "MAX_CHARGING_PERIODS",
    "SESSION_ONLY_DIMENSIONS",
    "Capability",
    "CdrDimensionType",
    "CdrLocationFacts",
    "ConnectorFormat",
    "ConnectorType",
    "DayOfWeek",
    "EnergySourceCategory",
    "EnvironmentalImpactCategory",
    "Facility",
    "ImageCategory",
    "OcpiEvseStatus",
    "ParkingRestriction",
    "ParkingType",
    "PowerType",
    "PriceFacts",
    "PricedCdrParts",
    "ReservationRestrictionType",
    "SessionStatus",
    "Status",
    "TariffDimensionType",
    "TariffType",
    "build_cdr",
    "build_cdr_location",
    "build_cdr_token",
    "build_charging_periods",
    "build_evse_status",
    "build_price",
    "build_session",
    "evse_uid_of",
    "evse_uid_or_derived",
    "format_evse_id",
    "format_evse_uid",
    "hours_between",
    "ocpi_evse_status",
    "round_number",
    "session_energy_kwh",
    "session_status",
    "wh_to_kwh",
]
