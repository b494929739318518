"""API request and response bodies: camelCase JSON, validated strictly."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from csms.core.clock import as_utc

T = TypeVar("T")


UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Page(CamelModel, Generic[T]):
    items: list[T]
    total: int


class ConnectorOut(CamelModel):
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
    location_id: str | None
    connectors: list[ConnectorOut]


class ChargePointIn(CamelModel):
    """Register or update a charge point. The password is write-only."""

    name: str | None = Field(default=None, max_length=255)
    security_profile: int | None = Field(default=None, ge=0, le=3)
    # Security whitepaper §7.2: AuthorizationKey is 16 to 20 bytes (up to 40 hex digits).
    password: str | None = Field(default=None, min_length=16, max_length=40, repr=False)
    location_id: str | None = Field(default=None, max_length=36)


class IdTagStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


class IdTagIn(CamelModel):
    status: IdTagStatus
    expiry_date: UtcDateTime | None = None
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=20)
    user_id: str | None = Field(default=None, min_length=1, max_length=36)


class IdTagOut(CamelModel):
    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None
    user_id: str | None


class TransactionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class TransactionOut(CamelModel):
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


class MeterValueOut(CamelModel):
    timestamp: datetime
    value: str
    measurand: str
    unit: str
    context: str
    location: str
    phase: str | None
    format: str


class Health(CamelModel):
    status: str
    database: str
    connected_chargers: int


class CommandOut(CamelModel):
    """The charger's answer to a command."""

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
    charge_point_id: str = Field(min_length=1, max_length=48)
    connector_id: int | None = Field(default=None, ge=1, le=INT32_MAX)
    id_tag: str = Field(min_length=1, max_length=20)


class StopTransactionIn(CamelModel):
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
    type: ResetType


class UnlockIn(CamelModel):
    connector_id: int = Field(ge=1, le=INT32_MAX)


class ReserveIn(CamelModel):
    connector_id: int = Field(ge=0, le=INT32_MAX)
    id_tag: str = Field(min_length=1, max_length=20)
    expiry_date: UtcDateTime
    parent_id_tag: str | None = Field(default=None, min_length=1, max_length=20)


class ReservationOut(CamelModel):
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
    updated_at: datetime


class ConfigurationKeyOut(CamelModel):
    key: str
    value: str | None
    readonly: bool | None
    updated_at: datetime


class VendorErrorCodeIn(CamelModel):
    description: str = Field(min_length=1, max_length=2000)


class VendorErrorCodeOut(CamelModel):
    vendor: str
    vendor_error_code: str
    description: str


class UserIn(CamelModel):
    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")


class UserOut(CamelModel):
    user_id: str
    name: str
    email: str | None
    id_tags: list[str]
