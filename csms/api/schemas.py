"""API request and response bodies: camelCase JSON, validated strictly."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from csms.core.clock import as_utc

T = TypeVar("T")


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


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


class IdTagOut(CamelModel):
    id_tag: str
    status: str
    expiry_date: datetime | None
    parent_id_tag: str | None


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
