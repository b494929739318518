"""API request and response bodies: camelCase JSON, validated strictly."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from csms.core.clock import as_utc
from csms.core.ocpi import ConnectorFormat, ConnectorType, PowerType
from csms.core.registration import RegistrationStatus

T = TypeVar("T")


def _utc(value: datetime) -> datetime:
    try:
        return as_utc(value)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 has no UTC datetime: the caller's fault, a 422.
        raise ValueError("date-time out of range in UTC") from None


UtcDateTime = Annotated[datetime, AfterValidator(_utc)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Page(CamelModel, Generic[T]):
    items: list[T]
    total: int


class ConnectorOut(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "connectorId": 1,
                    "status": "Charging",
                    "errorCode": "NoError",
                    "info": None,
                    "vendorErrorCode": None,
                    "vendorErrorText": None,
                    "ocpiStatus": "CHARGING",
                    "updatedAt": "2026-11-22T08:59:00Z",
                }
            ]
        }
    )

    connector_id: int
    status: str
    error_code: str
    info: str | None
    vendor_error_code: str | None
    vendor_error_text: str | None = Field(
        default=None, description="the vendor error code explained, from /vendor-error-codes"
    )
    ocpi_status: str
    updated_at: datetime | None


class ChargePointOut(CamelModel):
    id: str
    name: str | None
    connected: bool
    last_seen: datetime | None
    boot_status: str | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    network_status: str
    security_profile: int
    password_set: bool = Field(
        default=False, description="whether a password is stored (it is never returned)"
    )
    password_hex_compat: bool = False
    registration_status: RegistrationStatus = Field(
        default=RegistrationStatus.ACCEPTED,
        description="the operator's decision: accepted, pending (answered BootNotification "
        "Pending until accepted or rejected, ocpp.unknown_chargers) or rejected",
    )
    location_id: str | None
    local_list_version: int | None = Field(
        default=None, description="from the last accepted SendLocalList or GetLocalListVersion"
    )
    connectors: list[ConnectorOut]


class ConnectorSpecIn(CamelModel):
    """OCPI connector master data for every connector of a charger (mod_locations §Connector)."""

    standard: ConnectorType = ConnectorType.IEC_62196_T2
    format: ConnectorFormat = ConnectorFormat.SOCKET
    power_type: PowerType = PowerType.AC_3_PHASE
    max_voltage: int = Field(default=230, ge=0, le=2000)
    max_amperage: int = Field(default=32, ge=0, le=2000)
    max_electric_power: int | None = Field(default=None, ge=0, le=10_000_000)

    def to_ocpi(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "standard": self.standard.value,
            "format": self.format.value,
            "power_type": self.power_type.value,
            "max_voltage": self.max_voltage,
            "max_amperage": self.max_amperage,
        }
        if self.max_electric_power is not None:
            spec["max_electric_power"] = self.max_electric_power
        return spec


class ChargePointIn(CamelModel):
    """Register or update a charge point. The password is write-only."""

    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Bay 7",
                    "securityProfile": 1,
                    "password": "0123456789abcdef0123",
                    "locationId": "LOC-1",
                }
            ]
        }
    )

    name: str | None = Field(default=None, max_length=255)
    security_profile: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="0 none, 1 Basic auth, 2 TLS + Basic auth, 3 TLS client certificate; "
        "the charger is refused on a connection below it",
    )
    password: str | None = Field(
        default=None,
        min_length=16,
        max_length=40,
        repr=False,
        description="write-only. 32-40 hex digits are an AuthorizationKey (the charger sends "
        "the 16-20 raw bytes, OCPP-J §6.2.2); anything else is a 16-40 character text password",
    )
    password_hex_compat: bool | None = Field(
        default=None,
        description="also accept the AuthorizationKey's hex text as the Basic password "
        "(for chargers that send it that way; logged when used)",
    )
    location_id: str | None = Field(default=None, max_length=36)
    connector_spec: ConnectorSpecIn | None = Field(
        default=None, description="what its connectors are, for OCPI EVSEs and CDRs"
    )

    @field_validator("security_profile", "password", "password_hex_compat", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Leaving a field out keeps its value; null cannot mean "no profile" or "no flag".
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class IdTagStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


class IdTagIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "Accepted",
                    "expiryDate": "2027-12-31T23:59:59Z",
                    "parentIdTag": "FLEET-1",
                }
            ]
        }
    )

    status: IdTagStatus
    expiry_date: UtcDateTime | None = None
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=20)
    user_id: str | None = Field(default=None, min_length=1, max_length=36)


class IdTagOut(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "idTag": "CARD-0001",
                    "status": "Accepted",
                    "expiryDate": None,
                    "parentIdTag": "FLEET-1",
                    "userId": None,
                }
            ]
        }
    )

    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None
    user_id: str | None


class TransactionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class TransactionOut(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transactionId": 12,
                    "chargePointId": "CP-1",
                    "connectorId": 1,
                    "idTag": "CARD-0001",
                    "meterStart": 1000,
                    "meterStop": 4000,
                    "startTimestamp": "2026-01-01T10:00:00Z",
                    "stopTimestamp": "2026-01-01T11:00:00Z",
                    "stopReason": "Local",
                    "energyWh": 3000.0,
                    "status": "completed",
                    "flags": [],
                }
            ]
        }
    )

    transaction_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str | None
    meter_start: int | None
    meter_stop: int | None
    start_timestamp: datetime | None
    stop_timestamp: datetime | None
    stop_reason: str | None
    energy_wh: float | None
    status: TransactionStatus
    flags: list[str]
    tariff_id: str | None = Field(
        default=None, description="the tariff resolved at the start (docs/tariffs.md)"
    )
    cost: CostOut | None = Field(default=None, description="what the session cost, once priced")
    purchase_cost: float | None = Field(
        default=None,
        description="what its energy cost to buy, in cost's currency (electricity rates); "
        "with a tariff or without",
    )
    margin: float | None = Field(
        default=None,
        description="cost excl. VAT (0 without a tariff) minus purchase cost; "
        "null without a purchase cost",
    )


class CostOut(CamelModel):
    """A cost in the events' and API's form: `{currency, exclVat, inclVat}`."""

    currency: str
    excl_vat: float
    incl_vat: float | None


class MeterValueOut(CamelModel):
    timestamp: datetime
    value: str
    measurand: str
    unit: str
    context: str
    location: str
    phase: str | None
    format: str
    # unparsable_timestamp, future_timestamp, unset_timestamp, after_stop (docs/api.md)
    flags: list[str]


class Counters(CamelModel):
    """What went wrong at the OCPP edge since start, by kind (docs/api.md, "Counters")."""

    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "counters": {
                        "tls.handshake_failed": 2,
                        "tls.handshake_failed.certificate has expired": 1,
                        "auth.refused": 14,
                        "auth.throttled": 3,
                        "leniency.long_strings": 5,
                        "frames.too_big": 1,
                        "chargers.silent": 1,
                    }
                }
            ]
        }
    )

    counters: dict[str, int]


class Health(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "database": "ok",
                    "connectedChargers": 3,
                    "outboxBacklog": 0,
                    "outboxOldestAgeSeconds": None,
                }
            ]
        }
    )

    status: str
    database: str
    connected_chargers: int
    outbox_backlog: int | None = Field(description="events not yet acknowledged by the broker")
    outbox_oldest_age_seconds: float | None = Field(description="age of the oldest of them")


class CommandOut(CamelModel):
    """The charger's answer to a command."""

    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"action": "Reset", "chargePointId": "CP-1", "response": {"status": "Accepted"}}
            ]
        }
    )

    action: str
    charge_point_id: str
    response: dict[str, Any]


class CommandRecordOut(CamelModel):
    command_id: int
    charge_point_id: str
    action: str
    request: dict[str, Any]
    outcome: str = Field(description="ok, callerror, timeout or disconnected")
    response: dict[str, Any] | None
    error_code: str | None
    error_description: str | None
    error_details: dict[str, Any] | None
    requested_by: str | None
    requested_at: datetime
    completed_at: datetime
    duration_ms: float


INT32_MAX = 2**31 - 1


class StartSessionIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"chargePointId": "CP-1", "connectorId": 1, "idTag": "CARD-0001"}]
        }
    )

    charge_point_id: str = Field(min_length=1, max_length=48)
    connector_id: int | None = Field(default=None, ge=1, le=INT32_MAX)
    id_tag: str = Field(min_length=1, max_length=20)


class StopTransactionIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"force": False}]}
    )

    force: bool = Field(
        default=False,
        description="end the transaction in our data now, whatever the charger answers",
    )


class StopTransactionOut(CamelModel):
    transaction_id: int
    forced: bool
    response: dict[str, Any] | None = Field(
        description="the charger's RemoteStopTransaction answer, when it gave one"
    )
    transaction: TransactionOut


class ResetType(StrEnum):
    SOFT = "Soft"
    HARD = "Hard"


class ResetIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"type": "Soft"}]}
    )

    type: ResetType


class UnlockIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"connectorId": 1}]}
    )

    connector_id: int = Field(ge=1, le=INT32_MAX)


class ReserveIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"connectorId": 1, "idTag": "CARD-0001", "expiryDate": "2026-11-22T18:00:00Z"}
            ]
        }
    )

    connector_id: int = Field(ge=0, le=INT32_MAX)
    id_tag: str = Field(min_length=1, max_length=20)
    expiry_date: UtcDateTime
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=20)


class ReservationOut(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reservationId": 3,
                    "chargePointId": "CP-1",
                    "connectorId": 1,
                    "idTag": "CARD-0001",
                    "parentIdTag": None,
                    "expiryDate": "2026-11-22T18:00:00Z",
                    "status": "active",
                    "transactionId": None,
                }
            ]
        }
    )

    reservation_id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry_date: datetime
    status: str
    transaction_id: int | None


class ChargingProfileOut(CamelModel):
    connector_id: int
    charging_profile_id: int
    stack_level: int
    purpose: str
    transaction_id: int | None
    profile: dict[str, Any]
    source: str | None = Field(
        default=None, description="who sent it (X-Requested-By; balancer for csms's balancer)"
    )
    updated_at: datetime


class ConfigurationKeyOut(CamelModel):
    key: str
    value: str | None
    readonly: bool | None
    updated_at: datetime


class VendorErrorCodeIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"description": "Residual current device tripped"}]}
    )

    description: str = Field(min_length=1, max_length=2000)


class VendorErrorCodeOut(CamelModel):
    vendor: str
    vendor_error_code: str
    description: str


class UserIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "Ada Lovelace", "email": "ada@example.com"}]}
    )

    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")


class UserOut(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "userId": "8c0e6c1e-4f5b-4b8e-9a57-2f1f0a3b9c11",
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "idTags": ["CARD-0001"],
                }
            ]
        }
    )

    user_id: str
    name: str
    email: str | None
    id_tags: list[str]
