"""Strict pydantic models of the OCPI 2.2.1 objects csms emits: Location, Session, CDR.

Written from ``ocpi/ocpi`` tag ``2.2.1`` (commit 4809735): field names, cardinalities and
lengths are the tables of mod_locations, mod_sessions, mod_cdrs, mod_tariffs and types.
No maintained PyPI package fits pydantic 2 next to SQLModel, hence our own. What
"strict" means here:

- ``extra="forbid"``: a misspelt field name is an error, not silently dropped.
- Strict types: Python input must be ``Decimal`` for numbers, an aware ``datetime`` and
  our enum members (from ``csms.core.ocpi``, re-exported here); JSON input must use JSON
  numbers (not strings) for numbers.
- DateTime (types §DateTime): UTC only. Naive datetimes are refused, JSON text must end
  in ``Z`` (the spec allows a missing designator on input, but "+00:00 is not the same
  as UTC", and we never emit either). Output is ``YYYY-MM-DDTHH:MM:SS[.fff]Z``.
- number (types §number): ``Decimal`` with at most 4 decimals, emitted as a JSON number.
- CiString(n) (types §CiString): printable ASCII, 1..n characters, case kept as given.
  string(n): no control characters, at most n characters.

Validate core's dicts with ``Session.model_validate(d)`` and emit ``to_json_dict(model)``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from csms.core.ocpi import (
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
from csms.core.session import AuthMethod, TokenType
from csms.events.models_base import (
    StrictModel,
    datetime_text_parser,
    format_datetime,
    number_parser,
    to_json_dict,
    to_utc,
)

__all__ = [
    "AdditionalGeoLocation",
    "AuthMethod",
    "BusinessDetails",
    "Capability",
    "Cdr",
    "CdrDimension",
    "CdrDimensionType",
    "CdrLocation",
    "CdrToken",
    "ChargingPeriod",
    "Connector",
    "ConnectorFormat",
    "ConnectorType",
    "DayOfWeek",
    "DisplayText",
    "EnergyMix",
    "EnergySource",
    "EnergySourceCategory",
    "EnvironmentalImpact",
    "EnvironmentalImpactCategory",
    "Evse",
    "EvseStatusUpdate",
    "ExceptionalPeriod",
    "Facility",
    "GeoLocation",
    "Hours",
    "Image",
    "ImageCategory",
    "Location",
    "OcpiEvseStatus",
    "ParkingRestriction",
    "ParkingType",
    "PowerType",
    "Price",
    "PriceComponent",
    "PublishTokenType",
    "RegularHours",
    "ReservationRestrictionType",
    "Session",
    "SessionStatus",
    "SignedData",
    "SignedValue",
    "Status",
    "StatusSchedule",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffRestrictions",
    "TariffType",
    "TokenType",
    "to_json_dict",
]

# --- types (types.asciidoc) ------------------------------------------------------------------

_PRINTABLE_ASCII = r"^[\x20-\x7E]*$"
_NO_CONTROL = r"^[^\x00-\x1F\x7F]*$"

CiString2 = Annotated[str, StringConstraints(min_length=1, max_length=2, pattern=_PRINTABLE_ASCII)]
CiString4 = Annotated[str, StringConstraints(min_length=1, max_length=4, pattern=_PRINTABLE_ASCII)]
CiString32 = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=_PRINTABLE_ASCII)
]
CiString36 = Annotated[
    str, StringConstraints(min_length=1, max_length=36, pattern=_PRINTABLE_ASCII)
]
CiString39 = Annotated[
    str, StringConstraints(min_length=1, max_length=39, pattern=_PRINTABLE_ASCII)
]
CiString48 = Annotated[
    str, StringConstraints(min_length=1, max_length=48, pattern=_PRINTABLE_ASCII)
]
String4 = Annotated[str, StringConstraints(max_length=4, pattern=_NO_CONTROL)]
String10 = Annotated[str, StringConstraints(max_length=10, pattern=_NO_CONTROL)]
String16 = Annotated[str, StringConstraints(max_length=16, pattern=_NO_CONTROL)]
String20 = Annotated[str, StringConstraints(max_length=20, pattern=_NO_CONTROL)]
String45 = Annotated[str, StringConstraints(max_length=45, pattern=_NO_CONTROL)]
String64 = Annotated[str, StringConstraints(max_length=64, pattern=_NO_CONTROL)]
String100 = Annotated[str, StringConstraints(max_length=100, pattern=_NO_CONTROL)]
String255 = Annotated[str, StringConstraints(max_length=255, pattern=_NO_CONTROL)]
String512 = Annotated[str, StringConstraints(max_length=512, pattern=_NO_CONTROL)]
String5000 = Annotated[str, StringConstraints(max_length=5000, pattern=_NO_CONTROL)]
# types §URL: "An URL a string(255) type following the w3.org spec".
Url = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^\S+$")]

# CiString(2) "ISO-3166 alpha-2 country code"; CiString(3) party "following the ISO-15118
# standard"; string(3) "ISO 3166-1 alpha-3"; string(3) "ISO 4217"; string(2) "ISO 639-1".
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
PartyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]
CountryAlpha3 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]

# mod_locations §GeoLocation: strings, "Regex: -?[0-9]{1,2}\.[0-9]{5,7}" (and {1,3} for longitude).
Latitude = Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
Longitude = Annotated[str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]
# mod_locations §RegularHours, mod_tariffs §TariffRestrictions: "([0-1][0-9]|2[0-3]):[0-5][0-9]".
TimeOfDay = Annotated[str, StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
# mod_tariffs §TariffRestrictions: "([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])".
LocalDate = Annotated[
    str,
    StringConstraints(pattern=r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"),
]

# types §DateTime is string(25): at most 4 fractional digits fit after the seconds and "Z".
_parse_datetime_text = datetime_text_parser(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,4})?Z",
    "an OCPI DateTime is UTC: YYYY-MM-DDTHH:MM:SS[.ffff]Z",
)
_parse_number = number_parser("an OCPI number is a JSON number")


DateTime = Annotated[
    datetime,
    BeforeValidator(_parse_datetime_text),
    AfterValidator(to_utc),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
Number = Annotated[
    Decimal,
    BeforeValidator(_parse_number),
    Field(decimal_places=4),
    PlainSerializer(float, return_type=float, when_used="json"),
]
NonNegativeInt = Annotated[int, Field(ge=0)]


# --- types.asciidoc classes -----------------------------------------------------------------


class DisplayText(StrictModel):
    """types §DisplayText."""

    language: Language
    text: String512


class Price(StrictModel):
    """types §Price."""

    excl_vat: Number
    incl_vat: Number | None = None


# --- mod_locations ---------------------------------------------------------------------------


class GeoLocation(StrictModel):
    """mod_locations §GeoLocation (WGS 84)."""

    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(StrictModel):
    """mod_locations §AdditionalGeoLocation."""

    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class Image(StrictModel):
    """mod_locations §Image."""

    url: Url
    thumbnail: Url | None = None
    category: ImageCategory
    type: CiString4
    width: Annotated[int, Field(ge=0, le=99999)] | None = None
    height: Annotated[int, Field(ge=0, le=99999)] | None = None


class BusinessDetails(StrictModel):
    """mod_locations §BusinessDetails: operator, suboperator or owner."""

    name: String100
    website: Url | None = None
    logo: Image | None = None


class EnergySource(StrictModel):
    """mod_locations §EnergySource: "Percentage of this source (0-100) in the mix"."""

    source: EnergySourceCategory
    percentage: Annotated[Number, Field(ge=0, le=100)]


class EnvironmentalImpact(StrictModel):
    """mod_locations §EnvironmentalImpact, in g/kWh."""

    category: EnvironmentalImpactCategory
    amount: Number


class EnergyMix(StrictModel):
    """mod_locations §EnergyMix."""

    is_green_energy: bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String64 | None = None
    energy_product_name: String64 | None = None


class RegularHours(StrictModel):
    """mod_locations §RegularHours: weekday 1 (Monday) .. 7 (Sunday), local times."""

    weekday: Annotated[int, Field(ge=1, le=7)]
    period_begin: TimeOfDay
    period_end: TimeOfDay

    @model_validator(mode="after")
    def _end_after_begin(self) -> Self:
        # "period_end ... Must be later than period_begin."
        if self.period_end <= self.period_begin:
            raise ValueError("period_end must be later than period_begin")
        return self


class ExceptionalPeriod(StrictModel):
    """mod_locations §ExceptionalPeriod (UTC)."""

    period_begin: DateTime
    period_end: DateTime


class Hours(StrictModel):
    """mod_locations §Hours: 24/7, or regular hours, each with exceptions."""

    twentyfourseven: bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None

    @model_validator(mode="after")
    def _regular_hours_iff_not_247(self) -> Self:
        # "Only to be used if twentyfourseven=false, then this field needs to contain at
        # least one RegularHours object."
        if self.twentyfourseven and self.regular_hours:
            raise ValueError("regular_hours are only for twentyfourseven=false")
        if not self.twentyfourseven and not self.regular_hours:
            raise ValueError("twentyfourseven=false needs at least one regular_hours")
        return self


class PublishTokenType(StrictModel):
    """mod_locations §PublishTokenType."""

    uid: CiString36 | None = None
    type: TokenType | None = None
    visual_number: String64 | None = None
    issuer: String64 | None = None
    group_id: CiString36 | None = None

    @model_validator(mode="after")
    def _identifies_a_token(self) -> Self:
        # "At least one of the following fields SHALL be set: uid, visual_number, or
        # group_id. When uid is set, type SHALL also be set. When visual_number is set,
        # issuer SHALL also be set."
        if self.uid is None and self.visual_number is None and self.group_id is None:
            raise ValueError("one of uid, visual_number or group_id is required")
        if self.uid is not None and self.type is None:
            raise ValueError("uid needs type")
        if self.visual_number is not None and self.issuer is None:
            raise ValueError("visual_number needs issuer")
        return self


class StatusSchedule(StrictModel):
    """mod_locations §StatusSchedule."""

    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


class Connector(StrictModel):
    """mod_locations §Connector Object."""

    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: NonNegativeInt
    max_amperage: NonNegativeInt
    max_electric_power: NonNegativeInt | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: Url | None = None
    last_updated: DateTime


class Evse(StrictModel):
    """mod_locations §EVSE Object."""

    uid: CiString36
    evse_id: CiString48 | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(StrictModel):
    """mod_locations §Location Object (for ``location.updated``)."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    publish: bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String255 | None = None
    address: String45
    city: String45
    postal_code: String10 | None = None
    state: String20 | None = None
    country: CountryAlpha3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[Evse] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _publish_allowed_to_only_unpublished(self) -> Self:
        # "This field may only be used when the publish field is set to false."
        if self.publish and self.publish_allowed_to:
            raise ValueError("publish_allowed_to is only for publish=false")
        return self


class EvseStatusUpdate(StrictModel):
    """The ``ocpi`` part of the ``evse.status`` event (docs/events.md, "Types").

    ``status`` and ``last_updated`` are the EVSE PATCH body (mod_locations §PATCH, "SHALL
    contain the last_updated field"); ``evse_uid`` names the EVSE in the PATCH URL.
    """

    evse_uid: CiString36
    status: Status
    last_updated: DateTime


# --- mod_tariffs (for CDR.tariffs) -----------------------------------------------------------


class PriceComponent(StrictModel):
    """mod_tariffs §PriceComponent: a price and a VAT percentage of zero or more."""

    type: TariffDimensionType
    price: Annotated[Number, Field(ge=0)]
    vat: Annotated[Number, Field(ge=0, le=100)] | None = None
    step_size: NonNegativeInt


_TEN_YEARS = 10 * 366 * 86400


def _ordered(low: object, high: object, names: str) -> None:
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise ValueError(f"{names}: the minimum is above the maximum")


class TariffRestrictions(StrictModel):
    """mod_tariffs §TariffRestrictions: each minimum at most its maximum."""

    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: LocalDate | None = None
    end_date: LocalDate | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_current: Number | None = None
    max_current: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None

    @model_validator(mode="after")
    def _minimum_below_maximum(self) -> Self:
        _ordered(self.min_kwh, self.max_kwh, "min_kwh/max_kwh")
        _ordered(self.min_current, self.max_current, "min_current/max_current")
        _ordered(self.min_power, self.max_power, "min_power/max_power")
        _ordered(self.min_duration, self.max_duration, "min_duration/max_duration")
        _ordered(self.start_date, self.end_date, "start_date/end_date")
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= _TEN_YEARS:
                raise ValueError(f"{name}: a duration is zero to {_TEN_YEARS} seconds")
        return self


class TariffElement(StrictModel):
    """mod_tariffs §TariffElement."""

    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None

    @model_validator(mode="after")
    def _reservation_prices_flat_and_time(self) -> Self:
        # mod_tariffs §TariffRestrictions, reservation: "A reservation can only have: FLAT
        # and TIME TariffDimensions".
        if self.restrictions is not None and self.restrictions.reservation is not None:
            for component in self.price_components:
                if component.type not in (TariffDimensionType.FLAT, TariffDimensionType.TIME):
                    raise ValueError(f"a reservation element cannot price {component.type}")
        return self


class Tariff(StrictModel):
    """mod_tariffs §Tariff Object."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    currency: Currency
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: Url | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min_price is not None and self.max_price is not None:
            _ordered(self.min_price.excl_vat, self.max_price.excl_vat, "min_price/max_price")
        if self.start_date_time is not None and self.end_date_time is not None:
            if self.end_date_time <= self.start_date_time:
                raise ValueError("end_date_time must be later than start_date_time")
        return self


# --- mod_cdrs and mod_sessions ---------------------------------------------------------------


class CdrToken(StrictModel):
    """mod_cdrs §CdrToken: all fields required (country_code/party_id are the eMSP's)."""

    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrDimension(StrictModel):
    """mod_cdrs §CdrDimension."""

    type: CdrDimensionType
    volume: Number


class ChargingPeriod(StrictModel):
    """mod_cdrs §ChargingPeriod: "A period ends when the next period starts"."""

    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString36 | None = None


class SignedValue(StrictModel):
    """mod_cdrs §SignedValue (nature: Start, End, Intermediate, ...)."""

    nature: CiString32
    plain_data: String512
    signed_data: String5000


class SignedData(StrictModel):
    """mod_cdrs §SignedData (e.g. encoding_method OCMF)."""

    encoding_method: CiString36
    encoding_method_version: int | None = None
    public_key: String512 | None = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: String512 | None = None


class CdrLocation(StrictModel):
    """mod_cdrs §CdrLocation: the Location with only the EVSE and Connector used."""

    id: CiString36
    name: String255 | None = None
    address: String45
    city: String45
    postal_code: String10 | None = None
    state: String20 | None = None
    country: CountryAlpha3
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: CiString48
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class Session(StrictModel):
    """mod_sessions §Session Object (for ``session.started/updated/stopped``)."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: String255 | None = None
    currency: Currency
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class Cdr(StrictModel):
    """mod_cdrs §CDR Object (for ``cdr.created``); immutable once sent."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString39
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: String255 | None = None
    currency: Currency
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String255 | None = None
    invoice_reference_id: CiString39 | None = None
    credit: bool | None = None
    credit_reference_id: CiString39 | None = None
    home_charging_compensation: bool | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _cdr_rules(self) -> Self:
        # id: "Normal (non-credit) CDRs SHALL only have an ID with a maximum length of 36."
        if not self.credit and len(self.id) > 36:
            raise ValueError("a non-credit CDR id has at most 36 characters")
        # credit: "When set to true, ... the field credit_reference_id needs to be set".
        if self.credit and self.credit_reference_id is None:
            raise ValueError("a credit CDR needs credit_reference_id")
        # CdrDimensionType: Session-only values "SHALL therefor only be used in Sessions".
        for period in self.charging_periods:
            for dimension in period.dimensions:
                if dimension.type in SESSION_ONLY_DIMENSIONS:
                    raise ValueError(f"{dimension.type} is a Session-only dimension")
        return self
