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

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from csms.core.meter import Sample
from csms.core.session import (
    TOTAL_PHASES,
    WH_PER_KWH,
    SessionFacts,
    TokenFacts,
    import_register_wh,
    is_measured,
    parse_decimal,
)

# --- enums (mod_locations, mod_sessions, mod_cdrs, mod_tokens, mod_tariffs) ----------------


class OcpiEvseStatus(StrEnum):
    """mod_locations §Status enum: the status of an EVSE."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


Status = OcpiEvseStatus
"""The spec's name for the EVSE status enum."""


class Capability(StrEnum):
    """mod_locations §Capability enum."""

    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(StrEnum):
    """mod_locations §ConnectorFormat enum."""

    SOCKET = "SOCKET"
    CABLE = "CABLE"


class ConnectorType(StrEnum):
    """mod_locations §ConnectorType enum: the plug standards (note the mixed-case IEC 60309)."""

    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class PowerType(StrEnum):
    """mod_locations §PowerType enum."""

    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class ParkingType(StrEnum):
    """mod_locations §ParkingType enum."""

    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class ParkingRestriction(StrEnum):
    """mod_locations §ParkingRestriction enum."""

    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class Facility(StrEnum):
    """mod_locations §Facility enum."""

    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class EnergySourceCategory(StrEnum):
    """mod_locations §EnergySourceCategory enum."""

    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(StrEnum):
    """mod_locations §EnvironmentalImpactCategory enum."""

    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class ImageCategory(StrEnum):
    """mod_locations §ImageCategory enum."""

    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class SessionStatus(StrEnum):
    """mod_sessions §SessionStatus enum."""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class CdrDimensionType(StrEnum):
    """mod_cdrs §CdrDimensionType enum; see SESSION_ONLY_DIMENSIONS."""

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


# mod_cdrs §CdrDimensionType: "Some of these values are not useful for CDRs, and SHALL
# therefor only be used in Sessions" (the "Session Only" column).
SESSION_ONLY_DIMENSIONS = frozenset(
    {
        CdrDimensionType.CURRENT,
        CdrDimensionType.ENERGY_EXPORT,
        CdrDimensionType.ENERGY_IMPORT,
        CdrDimensionType.POWER,
        CdrDimensionType.STATE_OF_CHARGE,
    }
)


class TariffType(StrEnum):
    """mod_tariffs §TariffType enum."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class TariffDimensionType(StrEnum):
    """mod_tariffs §TariffDimensionType enum."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    """mod_tariffs §DayOfWeek enum."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(StrEnum):
    """mod_tariffs §ReservationRestrictionType enum."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


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


# --- facts: the plain inputs of the Session and CDR builders ---------------------------------


@dataclass(frozen=True)
class CdrLocationFacts:
    """Location, EVSE and connector master data as they were at the start of the session.

    mod_cdrs §CDR Object: "Location, EVSE, Tariffs and Token as they were *at the start*
    of the charging session". Coordinates are OCPI GeoLocation strings.
    """

    address: str
    city: str
    country: str
    latitude: str
    longitude: str
    evse_id: str
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType
    name: str | None = None
    postal_code: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class PriceFacts:
    """types §Price: ``excl_vat`` required, ``incl_vat`` optional, in the CDR's currency."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True)
class PricedCdrParts:
    """What a tariff adds to a CDR (mod_cdrs §CDR Object): the Tariff objects, the priced
    ChargingPeriods, the cost lines by field name (``total_fixed_cost``...) and the
    parking time in hours."""

    # OCPI Tariff objects: JSON dicts, or what the CDR's validator takes for them.
    tariffs: Sequence[Any]
    charging_periods: Sequence[dict[str, Any]]
    cost_lines: dict[str, PriceFacts]
    total_parking_h: Decimal


# --- numbers ---------------------------------------------------------------------------------

# types §number: "Unless mentioned otherwise, numbers use 4 decimals".
_FOUR_PLACES = Decimal("0.0001")
_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
DEFAULT_PERIOD = timedelta(minutes=15)
"""Charging period length. mod_sessions §Session Object: one per minute is "too much" for
a 3 h AC session, one per 30 min "not enough" for a 30 min DC session."""
MAX_CHARGING_PERIODS = 672
"""One week of DEFAULT_PERIOD. A longer session (a transaction forgotten for weeks, then
forced; a clock set mid-session, from 2000 to today) gets longer periods, whole multiples
of the length asked for, instead of hundreds of thousands of them in one event."""


def round_number(value: Decimal) -> Decimal:
    """An OCPI number: 4 decimals, half up."""
    return value.quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP)


def wh_to_kwh(wh: Decimal | int) -> Decimal:
    """Wh -> kWh, rounded to 4 decimals."""
    return round_number(Decimal(wh) / WH_PER_KWH)


def hours_between(start: datetime, end: datetime) -> Decimal:
    """The duration in hours, rounded to 4 decimals (CDR ``total_time``, ``TIME`` volumes)."""
    return round_number(
        Decimal((end - start) // timedelta(microseconds=1)) / _MICROSECONDS_PER_HOUR
    )


def _as_decimal(value: Decimal | int | float) -> Decimal:
    # str() first: Decimal(0.1) would carry the binary float's full expansion.
    return value if isinstance(value, Decimal) else Decimal(str(value))


# --- meter samples -> registers and charging periods -----------------------------------------

_POWER = "Power.Active.Import"
_CURRENT = "Current.Import"
_SOC = "SoC"
_PHASES = ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N")


def session_energy_kwh(facts: SessionFacts) -> Decimal:
    """OCPI Session ``kwh``: (register - meterStart)/1000, from meterStop once stopped.

    The register is ``latest_register_wh``, else the newest register sample; with none,
    no energy is known yet and the answer is 0 (the Session starts with ``kwh = 0``).
    """
    if facts.meter_stop_wh is not None:
        return wh_to_kwh(facts.meter_stop_wh - facts.meter_start_wh)
    latest = _latest_register(facts)
    if latest is None:
        return wh_to_kwh(0)
    return wh_to_kwh(latest - facts.meter_start_wh)


def _latest_register(facts: SessionFacts) -> Decimal | None:
    if facts.latest_register_wh is not None:
        return _as_decimal(facts.latest_register_wh)
    readings = [
        (s.timestamp, wh) for s in facts.samples if (wh := import_register_wh(s)) is not None
    ]
    if not readings:
        return None
    return max(readings, key=lambda reading: reading[0])[1]


def _periods_end(facts: SessionFacts) -> datetime | None:
    if facts.stop is not None:
        return max(facts.stop, facts.start)
    times = [s.timestamp for s in facts.samples if s.timestamp >= facts.start]
    return max(times) if times else None


def _widened(period: timedelta, *, span: timedelta) -> timedelta:
    """`period`, or the least multiple of it that cuts `span` into MAX_CHARGING_PERIODS."""
    multiple = -(-span // (period * MAX_CHARGING_PERIODS))  # ceiling division
    return period * max(multiple, 1)


def _boundaries(start: datetime, end: datetime, period: timedelta) -> list[datetime]:
    # Boundaries are aligned to multiples of `period` since the epoch, so that quarter
    # hours (and therefore wall-clock tariff changes) start new periods.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    bounds = [start]
    boundary = epoch + ((start - epoch) // period + 1) * period
    while boundary < end:
        bounds.append(boundary)
        boundary += period
    return bounds


class _Registers:
    """The energy register as a step function of time: the last reading at or before t."""

    def __init__(self, facts: SessionFacts, end: datetime) -> None:
        readings = [(facts.start, Decimal(facts.meter_start_wh))]
        readings += sorted(
            (
                (s.timestamp, wh)
                for s in facts.samples
                if facts.start <= s.timestamp <= end and (wh := import_register_wh(s)) is not None
            ),
            key=lambda reading: reading[0],
        )
        if facts.stop is not None and facts.meter_stop_wh is not None:
            # Errata §3.91: start and stop meter values are never dropped; meterStop wins.
            readings.append((end, Decimal(facts.meter_stop_wh)))
        self._times = [when for when, _ in readings]
        self._values = [wh for _, wh in readings]

    def at(self, when: datetime) -> Decimal:
        return self._values[max(bisect_right(self._times, when) - 1, 0)]


def _totals(
    samples: Iterable[Sample], *, measurand: str, units: dict[str, Decimal]
) -> list[Decimal]:
    """Per timestamp, the phase-less value or else the sum over phases, scaled by unit."""
    total: dict[datetime, Decimal] = {}
    by_phase: dict[datetime, Decimal] = {}
    for sample in samples:
        if sample.measurand != measurand or not is_measured(sample):
            continue
        scale = units.get(sample.unit)
        number = parse_decimal(sample.value)
        if scale is None or number is None:
            continue
        if sample.phase in TOTAL_PHASES:
            total[sample.timestamp] = number * scale
        elif sample.phase in _PHASES:
            by_phase[sample.timestamp] = by_phase.get(sample.timestamp, Decimal(0)) + number * scale
    return [total[when] if when in total else by_phase[when] for when in sorted(total | by_phase)]


def _dimension(kind: CdrDimensionType, volume: Decimal) -> dict[str, Any]:
    return {"type": kind, "volume": round_number(volume)}


def _period_dimensions(
    samples: Sequence[Sample], *, energy_wh: Decimal, hours: Decimal
) -> list[dict[str, Any]]:
    dimensions = [
        {"type": CdrDimensionType.ENERGY, "volume": wh_to_kwh(energy_wh)},
        {"type": CdrDimensionType.TIME, "volume": hours},
    ]
    power = _totals(samples, measurand=_POWER, units={"W": Decimal("0.001"), "kW": Decimal(1)})
    current = _totals(samples, measurand=_CURRENT, units={"A": Decimal(1)})
    if power:
        dimensions.append(_dimension(CdrDimensionType.MAX_POWER, max(power)))
        dimensions.append(_dimension(CdrDimensionType.MIN_POWER, min(power)))
    if current:
        dimensions.append(_dimension(CdrDimensionType.MAX_CURRENT, max(current)))
        dimensions.append(_dimension(CdrDimensionType.MIN_CURRENT, min(current)))
    if power:
        dimensions.append(_dimension(CdrDimensionType.POWER, sum(power, Decimal(0)) / len(power)))
    if current:
        dimensions.append(
            _dimension(CdrDimensionType.CURRENT, sum(current, Decimal(0)) / len(current))
        )
    soc = [
        (s.timestamp, number)
        for s in samples
        if s.measurand == _SOC
        and s.format == "Raw"
        and s.unit in ("Percent", "")
        and (number := parse_decimal(s.value)) is not None
    ]
    if soc:
        latest = max(soc, key=lambda reading: reading[0])[1]
        dimensions.append(_dimension(CdrDimensionType.STATE_OF_CHARGE, latest))
    return dimensions


def build_charging_periods(
    facts: SessionFacts, *, period: timedelta = DEFAULT_PERIOD, for_cdr: bool = False
) -> list[dict[str, Any]]:
    """OCPI ChargingPeriods (mod_cdrs §ChargingPeriod) from the transaction's samples.

    A period starts at the session start and at every ``period`` boundary (aligned to
    the epoch) before the end, which is the stop time or, while active, the newest
    sample. Each period carries ``ENERGY`` (Δ register, kWh; the periods add up to the
    session's energy) and ``TIME`` (hours), plus ``MAX_/MIN_POWER`` (kW) and
    ``MAX_/MIN_CURRENT`` (A, summed over phases) when sampled; Sessions also get the
    averages ``POWER`` and ``CURRENT`` and the last ``STATE_OF_CHARGE``. With
    ``for_cdr`` the Session-only dimensions are left out (SESSION_ONLY_DIMENSIONS).

    Status changes are not known here, so no ``PARKING_TIME`` periods are made. An
    active session with no samples yet has no periods (an empty list). A session longer
    than MAX_CHARGING_PERIODS periods gets longer ones (see there).
    """
    end = _periods_end(facts)
    if end is None:
        return []
    period = _widened(period, span=end - facts.start)
    bounds = _boundaries(facts.start, end, period)
    registers = _Registers(facts, end)
    periods: list[dict[str, Any]] = []
    for index, begin in enumerate(bounds):
        last = index == len(bounds) - 1
        finish = end if last else bounds[index + 1]
        inside = [
            s
            for s in facts.samples
            if begin <= s.timestamp < finish or (last and s.timestamp == finish)
        ]
        dimensions = _period_dimensions(
            inside,
            energy_wh=registers.at(finish) - registers.at(begin),
            hours=hours_between(begin, finish),
        )
        if for_cdr:
            dimensions = [d for d in dimensions if d["type"] not in SESSION_ONLY_DIMENSIONS]
        periods.append({"start_date_time": begin, "dimensions": dimensions})
    return periods


# --- Session and CDR -------------------------------------------------------------------------


def evse_uid_of(facts: SessionFacts) -> str:
    """The OCPI EVSE uid of the session's connector: its own, or the derived one."""
    if facts.evse_uid is not None:
        return facts.evse_uid
    return format_evse_uid(facts.charge_point_id, facts.connector_id)


def build_cdr_token(facts: SessionFacts) -> dict[str, Any]:
    """mod_cdrs §CdrToken: ``uid`` is the idTag; the rest from ``facts.token`` or the CPO."""
    token = facts.token or TokenFacts(
        country_code=facts.country_code, party_id=facts.party_id, contract_id=facts.id_tag
    )
    return {
        "country_code": token.country_code,
        "party_id": token.party_id,
        "uid": facts.id_tag,
        "type": token.type,
        "contract_id": token.contract_id,
    }


def session_status(facts: SessionFacts) -> SessionStatus:
    """ACTIVE until stopped, then COMPLETED; INVALID when the start was not accepted."""
    if facts.invalid:
        return SessionStatus.INVALID
    return SessionStatus.ACTIVE if facts.stop is None else SessionStatus.COMPLETED


def _price(price: PriceFacts) -> dict[str, Any]:
    out: dict[str, Any] = {"excl_vat": round_number(price.excl_vat)}
    if price.incl_vat is not None:
        out["incl_vat"] = round_number(price.incl_vat)
    return out


def build_session(
    facts: SessionFacts,
    *,
    last_updated: datetime,
    total_cost: PriceFacts | None = None,
    period: timedelta = DEFAULT_PERIOD,
    charging_periods: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OCPI 2.2.1 Session (mod_sessions §Session Object) for ``session.*`` events.

    ``kwh`` is the energy so far (session_energy_kwh). ``total_cost`` is left out unless
    given: "When omitted … it does not imply the session is/was free of charge".
    ``charging_periods``, when given (a priced session's, with ``tariff_id``), replace
    the periods made from the samples.
    """
    session: dict[str, Any] = {
        "country_code": facts.country_code,
        "party_id": facts.party_id,
        "id": facts.session_id,
        "start_date_time": facts.start,
    }
    if facts.stop is not None:
        session["end_date_time"] = facts.stop
    session["kwh"] = session_energy_kwh(facts)
    session["cdr_token"] = build_cdr_token(facts)
    session["auth_method"] = facts.auth_method
    if facts.authorization_reference is not None:
        session["authorization_reference"] = facts.authorization_reference
    session["location_id"] = facts.location_id
    session["evse_uid"] = evse_uid_of(facts)
    session["connector_id"] = facts.ocpi_connector_id
    if facts.meter_id is not None:
        session["meter_id"] = facts.meter_id
    session["currency"] = facts.currency
    periods = (
        charging_periods
        if charging_periods is not None
        else build_charging_periods(facts, period=period)
    )
    if periods:
        session["charging_periods"] = periods
    if total_cost is not None:
        session["total_cost"] = _price(total_cost)
    session["status"] = session_status(facts)
    session["last_updated"] = last_updated
    return session


def build_cdr_location(facts: SessionFacts, location: CdrLocationFacts) -> dict[str, Any]:
    """mod_cdrs §CdrLocation: the snapshot plus the session's location/EVSE/connector ids."""
    out: dict[str, Any] = {"id": facts.location_id}
    if location.name is not None:
        out["name"] = location.name
    out["address"] = location.address
    out["city"] = location.city
    if location.postal_code is not None:
        out["postal_code"] = location.postal_code
    if location.state is not None:
        out["state"] = location.state
    out["country"] = location.country
    out["coordinates"] = {"latitude": location.latitude, "longitude": location.longitude}
    out["evse_uid"] = evse_uid_of(facts)
    out["evse_id"] = location.evse_id
    out["connector_id"] = facts.ocpi_connector_id
    out["connector_standard"] = location.connector_standard
    out["connector_format"] = location.connector_format
    out["connector_power_type"] = location.connector_power_type
    return out


def build_cdr(
    facts: SessionFacts,
    *,
    cdr_id: str,
    location: CdrLocationFacts,
    total_cost: PriceFacts,
    last_updated: datetime,
    remark: str | None = None,
    period: timedelta = DEFAULT_PERIOD,
    priced: PricedCdrParts | None = None,
) -> dict[str, Any]:
    """An OCPI 2.2.1 CDR (mod_cdrs §CDR Object) for ``cdr.created``.

    With ``priced`` (a session priced with a tariff), the CDR carries that tariff in
    ``tariffs``, its priced charging periods (with ``tariff_id``), the cost lines and
    ``total_parking_time``.

    ``total_energy`` = (meterStop - meterStart)/1000 kWh, ``total_time`` = (stop - start)
    in hours, ``charging_periods`` as build_charging_periods(for_cdr=True). ``cdr_id``
    is never reused (≤ 36 characters for a normal CDR); ``total_cost``, required by
    mod_cdrs §CDR Object, comes from the tariff (``{excl_vat: 0}`` with a free-of-charge
    tariff when free, as in mod_tariffs §Free of Charge Tariff example).
    ``remark`` is a good home for StopTransaction.reason.

    Raises:
        ValueError: the transaction has not stopped, has no meterStop, or stops
            before it starts.
    """
    if facts.stop is None or facts.meter_stop_wh is None:
        raise ValueError(f"transaction {facts.transaction_id} has not stopped")
    if facts.stop < facts.start:
        raise ValueError(f"transaction {facts.transaction_id} stops before it starts")
    cdr: dict[str, Any] = {
        "country_code": facts.country_code,
        "party_id": facts.party_id,
        "id": cdr_id,
        "start_date_time": facts.start,
        "end_date_time": facts.stop,
        "session_id": facts.session_id,
        "cdr_token": build_cdr_token(facts),
        # mod_cdrs: "The last method SHALL be used in the CDR."
        "auth_method": facts.auth_method,
    }
    if facts.authorization_reference is not None:
        cdr["authorization_reference"] = facts.authorization_reference
    cdr["cdr_location"] = build_cdr_location(facts, location)
    if facts.meter_id is not None:
        cdr["meter_id"] = facts.meter_id
    cdr["currency"] = facts.currency
    if priced is not None:
        cdr["tariffs"] = list(priced.tariffs)
        cdr["charging_periods"] = list(priced.charging_periods)
    else:
        cdr["charging_periods"] = build_charging_periods(facts, period=period, for_cdr=True)
    cdr["total_cost"] = _price(total_cost)
    cdr["total_energy"] = wh_to_kwh(facts.meter_stop_wh - facts.meter_start_wh)
    cdr["total_time"] = hours_between(facts.start, facts.stop)
    if priced is not None:
        cdr.update({name: _price(price) for name, price in priced.cost_lines.items()})
        cdr["total_parking_time"] = round_number(priced.total_parking_h)
    if remark is not None:
        cdr["remark"] = remark
    cdr["last_updated"] = last_updated
    return cdr
