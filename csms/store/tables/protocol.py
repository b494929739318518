"""OCPP 1.6 state: chargers, connectors, transactions, meter values, commands, profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import OPEN_FOR_THE_CHARGER, big_id, utc_column


class ChargePoint(SQLModel, table=True):
    __tablename__ = "charge_points"

    id: str = Field(primary_key=True, max_length=48)
    name: str | None = Field(default=None, max_length=255)
    security_profile: int = Field(default=0)
    password_hash: str | None = Field(default=None, max_length=255)
    # Also accept the key's hex text as the Basic password, for chargers that send it instead
    # of the raw bytes (OCPP-J §6.2.2; docs/security.md, "Passwords (profiles 1 and 2)").
    password_hex_compat: bool = Field(default=False)
    location_id: str | None = Field(default=None, max_length=36)
    # OCPI connector master data for every connector of the charger (standard, format...).
    connector_spec: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    boot_status: str | None = Field(default=None, max_length=16)
    vendor: str | None = Field(default=None, max_length=255)
    model: str | None = Field(default=None, max_length=255)
    serial_number: str | None = Field(default=None, max_length=255)
    charge_box_serial_number: str | None = Field(default=None, max_length=255)
    firmware_version: str | None = Field(default=None, max_length=255)
    iccid: str | None = Field(default=None, max_length=255)
    imsi: str | None = Field(default=None, max_length=255)
    meter_type: str | None = Field(default=None, max_length=255)
    meter_serial_number: str | None = Field(default=None, max_length=255)
    local_list_version: int | None = Field(default=None)
    firmware_status: str | None = Field(default=None, max_length=32)
    diagnostics_status: str | None = Field(default=None, max_length=32)
    log_status: str | None = Field(default=None, max_length=32)
    first_accepted_at: datetime | None = utc_column()
    last_boot_at: datetime | None = utc_column()
    last_seen: datetime | None = utc_column()
    connected_at: datetime | None = utc_column()
    disconnected_at: datetime | None = utc_column()
    # How far the offline rules went since the last disconnect: 0 none, 1 EVSEs UNKNOWN,
    # 2 long_term_unavailable. A connection resets it.
    offline_stage: int = Field(default=0)
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()
    # The operator's decision: accepted, pending or rejected (csms/core/registration.py).
    registration_status: str = Field(
        default="accepted",
        max_length=16,
        index=True,
        sa_column_kwargs={"server_default": "accepted"},
    )


class Connector(SQLModel, table=True):
    """The current status of a connector; connector 0 is the charge point itself."""

    __tablename__ = "connectors"

    charge_point_id: str = Field(primary_key=True, foreign_key="charge_points.id", max_length=48)
    connector_id: int = Field(primary_key=True)
    status: str = Field(max_length=16)
    error_code: str = Field(max_length=32)
    info: str | None = Field(default=None, max_length=50)
    vendor_id: str | None = Field(default=None, max_length=255)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    updated_at: datetime | None = utc_column()


class StatusNotification(SQLModel, table=True):
    """Every StatusNotification received: the connector's history."""

    __tablename__ = "status_notifications"
    # By connector and time: a stopped session's statuses (its parking time) are the
    # connector's last one before its start and those up to its stop (store.tariffs).
    __table_args__ = (
        Index("ix_status_notifications_cp_time", "charge_point_id", "connector_id", "timestamp"),
    )

    id: int | None = big_id()
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    status: str = Field(max_length=16)
    error_code: str = Field(max_length=32)
    info: str | None = Field(default=None, max_length=50)
    vendor_id: str | None = Field(default=None, max_length=255)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    timestamp: datetime | None = utc_column(nullable=False)
    received_at: datetime | None = utc_column(nullable=False)


class IdTag(SQLModel, table=True):
    __tablename__ = "id_tags"

    id_tag: str = Field(primary_key=True, max_length=20)
    status: str = Field(max_length=16)
    expiry_date: datetime | None = utc_column()
    parent_id_tag: str | None = Field(default=None, max_length=20)
    user_id: str | None = Field(default=None, max_length=36, foreign_key="users.id")
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class Transaction(SQLModel, table=True):
    """A charging transaction; `id` is the OCPP transactionId handed to the charger."""

    __tablename__ = "transactions"
    __table_args__ = (
        # The same StartTransaction (docs/ocpp.md, "Transactions") maps to one row, across
        # processes too, while the charger has not stopped it: a conformant charger never
        # resends a Start after the Stop that carries its id, so a charger without a clock or
        # meter (same key every time) gets a new transaction for its next session.
        Index(
            "uq_transactions_start_open",
            "charge_point_id",
            "connector_id",
            "id_tag",
            "start_timestamp",
            "meter_start",
            unique=True,
            sqlite_where=text(OPEN_FOR_THE_CHARGER),
            postgresql_where=text(OPEN_FOR_THE_CHARGER),
        ),
        # A StopTransaction for an unknown id (or -1, errata §3.18) is kept once per stop.
        UniqueConstraint(
            "charge_point_id", "orphan_ref", "stop_timestamp", name="uq_transactions_orphan"
        ),
        Index("ix_transactions_cp_connector", "charge_point_id", "connector_id"),
    )

    # int4, not BIG_ID: the OCPP transactionId, an int32 at the charger (tables/columns.py).
    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    id_tag: str | None = Field(default=None, max_length=20)
    start_id_tag_status: str | None = Field(default=None, max_length=16)
    meter_start: int | None = Field(default=None, sa_type=BigInteger)
    start_timestamp: datetime | None = utc_column()
    reservation_id: int | None = Field(default=None)
    meter_stop: int | None = Field(default=None, sa_type=BigInteger)
    stop_timestamp: datetime | None = utc_column()
    stop_reason: str | None = Field(default=None, max_length=32)
    stop_id_tag: str | None = Field(default=None, max_length=20)
    charger_stopped: bool = Field(default=False)
    last_register_wh: float | None = Field(default=None)
    orphan_ref: int | None = Field(default=None, sa_type=BigInteger)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()
    # The data of the estimated cdr.created (forced or implicitly ended), kept so that its
    # credit CDR can repeat it (OCPI 2.2.1 mod_cdrs §Credit CDRs).
    estimated_cdr: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )


class MeterValue(SQLModel, table=True):
    """One sampled value; an exact repeat of a sample is stored once."""

    __tablename__ = "meter_values"
    __table_args__ = (
        # Only an exact repeat is a repeat: a different value at the same instant is kept.
        # The value goes in as its digest, because a SignedData value can outgrow a
        # PostgreSQL btree entry (about 2.7 kB).
        UniqueConstraint(
            "charge_point_id",
            "connector_id",
            "timestamp",
            "measurand",
            "phase",
            "location",
            "context",
            "unit",
            "format",
            "value_digest",
            name="uq_meter_values_sample",
        ),
        Index("ix_meter_values_transaction", "transaction_id"),
    )

    id: int | None = big_id()
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    transaction_id: int | None = Field(default=None, foreign_key="transactions.id")
    claimed_transaction_id: int | None = Field(default=None, sa_type=BigInteger)
    timestamp: datetime | None = utc_column(nullable=False)
    value: str = Field(sa_type=Text)
    measurand: str = Field(max_length=64)
    unit: str = Field(max_length=16)
    context: str = Field(max_length=32)
    location: str = Field(max_length=16)
    phase: str = Field(max_length=8)
    format: str = Field(max_length=16)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    received_at: datetime | None = utc_column(nullable=False)
    # md5 of the value (hex), for the uniqueness of a sample only.
    value_digest: str = Field(max_length=32)
    # Timestamped after its transaction's stop: kept, but out of its energy and CDR.
    after_stop: bool = Field(default=False)


class ChargerMessage(SQLModel, table=True):
    """Charger messages kept as they came: DataTransfer, firmware and diagnostics status."""

    __tablename__ = "charger_messages"
    __table_args__ = (Index("ix_charger_messages_cp", "charge_point_id", "action"),)

    id: int | None = big_id()
    charge_point_id: str = Field(max_length=48)
    action: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime | None = utc_column(nullable=False)


class Command(SQLModel, table=True):
    """Every CSMS->charger command: who asked, what was sent, what came back, and when."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_cp", "charge_point_id", "id"),)

    id: int | None = big_id()
    charge_point_id: str = Field(max_length=48)
    action: str = Field(max_length=64)
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    outcome: str = Field(max_length=16)
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error_code: str | None = Field(default=None, max_length=64)
    error_description: str | None = Field(default=None, sa_type=Text)
    error_details: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    requested_by: str | None = Field(default=None, max_length=255)
    requested_at: datetime | None = utc_column(nullable=False)
    completed_at: datetime | None = utc_column(nullable=False)


class ChargingProfile(SQLModel, table=True):
    """A charging profile the charger accepted, as SetChargingProfile sent it."""

    __tablename__ = "charging_profiles"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    connector_id: int = Field(primary_key=True)
    charging_profile_id: int = Field(primary_key=True)
    stack_level: int
    purpose: str = Field(max_length=32)
    transaction_id: int | None = Field(default=None)
    profile: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Who sent it: the command's X-Requested-By ("balancer" for csms's own balancer).
    source: str | None = Field(default=None, max_length=255)
    updated_at: datetime | None = utc_column(nullable=False)


class Reservation(SQLModel, table=True):
    """A reservation; `id` is the OCPP reservationId unless the operator chose one."""

    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("charge_point_id", "reservation_id", name="uq_reservations_cp_id"),
        Index("ix_reservations_status", "status", "expiry_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    reservation_id: int
    connector_id: int
    id_tag: str = Field(max_length=20)
    parent_id_tag: str | None = Field(default=None, max_length=20)
    expiry_date: datetime | None = utc_column(nullable=False)
    status: str = Field(max_length=16)
    transaction_id: int | None = Field(default=None)
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)


class ConfigurationKey(SQLModel, table=True):
    """The last known value of a charger's configuration key."""

    __tablename__ = "configuration_keys"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    key: str = Field(primary_key=True, max_length=50)
    value: str | None = Field(default=None, max_length=500)
    readonly: bool | None = Field(default=None)
    updated_at: datetime | None = utc_column(nullable=False)


class VendorErrorCode(SQLModel, table=True):
    """What a vendor's error code means, to explain StatusNotification errors."""

    __tablename__ = "vendor_error_codes"

    vendor: str = Field(primary_key=True, max_length=255)
    vendor_error_code: str = Field(primary_key=True, max_length=50)
    description: str = Field(sa_type=Text)
