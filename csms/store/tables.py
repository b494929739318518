"""SQLModel tables. The schema itself is owned by the Alembic migrations next door."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite keeps them as naive UTC text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class (for bulk statements)."""
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table)
    return table


def _utc(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


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
    first_accepted_at: datetime | None = _utc()
    last_boot_at: datetime | None = _utc()
    last_seen: datetime | None = _utc()
    connected_at: datetime | None = _utc()
    disconnected_at: datetime | None = _utc()
    # How far the offline rules went since the last disconnect: 0 none, 1 EVSEs UNKNOWN,
    # 2 long_term_unavailable. A connection resets it.
    offline_stage: int = Field(default=0)
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


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
    updated_at: datetime | None = _utc()


class StatusNotification(SQLModel, table=True):
    """Every StatusNotification received: the connector's history."""

    __tablename__ = "status_notifications"
    __table_args__ = (Index("ix_status_notifications_cp", "charge_point_id", "connector_id"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    status: str = Field(max_length=16)
    error_code: str = Field(max_length=32)
    info: str | None = Field(default=None, max_length=50)
    vendor_id: str | None = Field(default=None, max_length=255)
    vendor_error_code: str | None = Field(default=None, max_length=50)
    timestamp: datetime | None = _utc(nullable=False)
    received_at: datetime | None = _utc(nullable=False)


class IdTag(SQLModel, table=True):
    __tablename__ = "id_tags"

    id_tag: str = Field(primary_key=True, max_length=20)
    status: str = Field(max_length=16)
    expiry_date: datetime | None = _utc()
    parent_id_tag: str | None = Field(default=None, max_length=20)
    user_id: str | None = Field(default=None, max_length=36, foreign_key="users.id")
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class Transaction(SQLModel, table=True):
    """A charging transaction; `id` is the OCPP transactionId handed to the charger."""

    __tablename__ = "transactions"
    __table_args__ = (
        # The same StartTransaction maps to one row, across processes too (docs/ocpp.md,
        # "Transactions").
        UniqueConstraint(
            "charge_point_id",
            "connector_id",
            "id_tag",
            "start_timestamp",
            "meter_start",
            name="uq_transactions_start",
        ),
        # A StopTransaction for an unknown id (or -1, errata §3.18) is kept once per stop.
        UniqueConstraint(
            "charge_point_id", "orphan_ref", "stop_timestamp", name="uq_transactions_orphan"
        ),
        Index("ix_transactions_cp_connector", "charge_point_id", "connector_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    id_tag: str | None = Field(default=None, max_length=20)
    start_id_tag_status: str | None = Field(default=None, max_length=16)
    meter_start: int | None = Field(default=None, sa_type=BigInteger)
    start_timestamp: datetime | None = _utc()
    reservation_id: int | None = Field(default=None)
    meter_stop: int | None = Field(default=None, sa_type=BigInteger)
    stop_timestamp: datetime | None = _utc()
    stop_reason: str | None = Field(default=None, max_length=32)
    stop_id_tag: str | None = Field(default=None, max_length=20)
    charger_stopped: bool = Field(default=False)
    last_register_wh: float | None = Field(default=None)
    orphan_ref: int | None = Field(default=None, sa_type=BigInteger)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class MeterValue(SQLModel, table=True):
    """One sampled value; a repeat of the same sample is stored once."""

    __tablename__ = "meter_values"
    __table_args__ = (
        UniqueConstraint(
            "charge_point_id",
            "connector_id",
            "timestamp",
            "measurand",
            "phase",
            "location",
            "context",
            name="uq_meter_values_sample",
        ),
        Index("ix_meter_values_transaction", "transaction_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    transaction_id: int | None = Field(default=None, foreign_key="transactions.id")
    claimed_transaction_id: int | None = Field(default=None, sa_type=BigInteger)
    timestamp: datetime | None = _utc(nullable=False)
    value: str = Field(sa_type=Text)
    measurand: str = Field(max_length=64)
    unit: str = Field(max_length=16)
    context: str = Field(max_length=32)
    location: str = Field(max_length=16)
    phase: str = Field(max_length=8)
    format: str = Field(max_length=16)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    received_at: datetime | None = _utc(nullable=False)


class ChargerMessage(SQLModel, table=True):
    """Charger messages kept as they came: DataTransfer, firmware and diagnostics status."""

    __tablename__ = "charger_messages"
    __table_args__ = (Index("ix_charger_messages_cp", "charge_point_id", "action"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    action: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime | None = _utc(nullable=False)


class Command(SQLModel, table=True):
    """Every CSMS->charger command: who asked, what was sent, what came back, and when."""

    __tablename__ = "commands"
    __table_args__ = (Index("ix_commands_cp", "charge_point_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
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
    requested_at: datetime | None = _utc(nullable=False)
    completed_at: datetime | None = _utc(nullable=False)


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
    updated_at: datetime | None = _utc(nullable=False)


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
    expiry_date: datetime | None = _utc(nullable=False)
    status: str = Field(max_length=16)
    transaction_id: int | None = Field(default=None)
    created_at: datetime | None = _utc(nullable=False)
    updated_at: datetime | None = _utc(nullable=False)


class ConfigurationKey(SQLModel, table=True):
    """The last known value of a charger's configuration key."""

    __tablename__ = "configuration_keys"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    key: str = Field(primary_key=True, max_length=50)
    value: str | None = Field(default=None, max_length=500)
    readonly: bool | None = Field(default=None)
    updated_at: datetime | None = _utc(nullable=False)


class VendorErrorCode(SQLModel, table=True):
    """What a vendor's error code means, to explain StatusNotification errors."""

    __tablename__ = "vendor_error_codes"

    vendor: str = Field(primary_key=True, max_length=255)
    vendor_error_code: str = Field(primary_key=True, max_length=50)
    description: str = Field(sa_type=Text)


class User(SQLModel, table=True):
    """A driver or fleet who owns id tags."""

    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class OutboxEvent(SQLModel, table=True):
    """An event written in the same transaction as the change that caused it.

    The relay publishes undelivered rows in `id` order and sets `delivered_at` only after
    the broker's PUBACK; `event_id` is the CloudEvents id, the same on every redelivery.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_pending", "delivered_at", "id"),
        UniqueConstraint("event_id", name="uq_outbox_events_event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36)
    charge_point_id: str = Field(max_length=48)
    type: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    time: datetime | None = _utc(nullable=False)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _utc(nullable=False)
    delivered_at: datetime | None = _utc()


class Location(SQLModel, table=True):
    """An OCPI 2.2.1 Location as the operator described it; its EVSEs come from its chargers."""

    __tablename__ = "locations"

    id: str = Field(primary_key=True, max_length=36)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = _utc(nullable=False)


class SecurityEvent(SQLModel, table=True):
    """A security event: reported by a charger (SecurityEventNotification) or seen by csms."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_cp", "charge_point_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    # "charger" for SecurityEventNotification, "csms" for what the server itself saw.
    source: str = Field(max_length=16)
    type: str = Field(max_length=50)
    tech_info: str | None = Field(default=None, sa_type=Text)
    remote_address: str | None = Field(default=None, max_length=64)
    timestamp: datetime | None = _utc(nullable=False)
    received_at: datetime | None = _utc(nullable=False)


class IssuedCertificate(SQLModel, table=True):
    """A charger certificate csms signed from a SignCertificate CSR."""

    __tablename__ = "issued_certificates"
    __table_args__ = (Index("ix_issued_certificates_cp", "charge_point_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    serial_number: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    not_before: datetime | None = _utc(nullable=False)
    not_after: datetime | None = _utc(nullable=False)
    pem: str = Field(sa_type=Text)
    issued_at: datetime | None = _utc(nullable=False)


# -- OCPI roaming (docs/ocpi.md) -----------------------------------------------------------


class OcpiPartner(SQLModel, table=True):
    """A roaming partner (eMSP, hub, NSP...) and the state of the OCPI credentials handshake.

    Credentials tokens the partner presents to us are kept only as SHA-256 digests; the
    token csms presents to the partner must be sent, so it is kept as given (never shown).
    """

    __tablename__ = "ocpi_partners"
    __table_args__ = (
        Index("ix_ocpi_partners_token", "token_hash"),
        Index("ix_ocpi_partners_token_a", "token_a_hash"),
    )

    id: str = Field(primary_key=True, max_length=64)
    name: str | None = Field(default=None, max_length=255)
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    state: str = Field(max_length=16)
    versions_url: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=8)
    # The partner's endpoints for its version: [{identifier, role, url}].
    endpoints: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The CredentialsRoles the partner gave in its credentials.
    their_roles: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    token_a_hash: str | None = Field(default=None, max_length=64)
    token_hash: str | None = Field(default=None, max_length=64)
    outgoing_token: str | None = Field(default=None, max_length=64)
    # The partner uses credentials tokens unencoded (OCPI 2.1.1 style) in both directions.
    unencoded_token: bool = Field(default=False)
    publish_all: bool = Field(default=False)
    last_error: str | None = Field(default=None, sa_type=Text)
    registered_at: datetime | None = _utc()
    created_at: datetime | None = _utc(nullable=False)
    updated_at: datetime | None = _utc(nullable=False)


class OcpiPartnerLocation(SQLModel, table=True):
    """A location for one partner: chosen by the operator, and what was last sent of it."""

    __tablename__ = "ocpi_partner_locations"

    partner_id: str = Field(primary_key=True, max_length=64)
    location_id: str = Field(primary_key=True, max_length=36)
    # Picked explicitly (PUT /partners/{id}/locations); false: sent under `all`.
    chosen: bool = Field(default=False)
    # None: every charger linked to the location; a list: only these chargers' EVSEs.
    charge_point_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The Location as last PUT to the partner, to mark EVSEs it no longer gets REMOVED.
    sent: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime | None = _utc(nullable=False)


class OcpiPush(SQLModel, table=True):
    """One push waiting for a partner, sent in `id` order per partner and retried until the
    partner takes it; a newer push for the same object replaces an unsent one."""

    __tablename__ = "ocpi_pushes"
    __table_args__ = (
        Index("ix_ocpi_pushes_partner", "partner_id", "failed_at", "id"),
        Index("ix_ocpi_pushes_object", "partner_id", "object_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(max_length=64)
    object_key: str = Field(max_length=160)
    kind: str = Field(max_length=24)
    url: str | None = Field(default=None, max_length=255)
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _utc(nullable=False)
    last_error: str | None = Field(default=None, sa_type=Text)
    # Set when the partner refused it for good (kept for the operator, not retried).
    failed_at: datetime | None = _utc()
    created_at: datetime | None = _utc(nullable=False)


class OcpiFeed(SQLModel, table=True):
    """How far the OCPI feed has read the outbox: the id of the last event turned into pushes."""

    __tablename__ = "ocpi_feed"

    name: str = Field(primary_key=True, max_length=32)
    last_event_id: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime | None = _utc(nullable=False)


class OcpiToken(SQLModel, table=True):
    """A partner's token (OCPI Token object), pushed to us or given with a command."""

    __tablename__ = "ocpi_tokens"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "uid", "type", name="uq_ocpi_tokens_uid"),
        Index("ix_ocpi_tokens_id_tag", "id_tag"),
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: str = Field(max_length=64)
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)
    uid: str = Field(max_length=36)
    type: str = Field(max_length=16)
    # The OCPP idTag the charger knows it by (the uid, or a derived one when it is longer).
    id_tag: str = Field(max_length=20)
    contract_id: str = Field(max_length=36)
    whitelist: str = Field(max_length=16)
    valid: bool
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Pushed through the Tokens module; false: only seen in a START_SESSION or RESERVE_NOW.
    pushed: bool = Field(default=True)
    last_updated: datetime | None = _utc(nullable=False)


class OcpiAuthorization(SQLModel, table=True):
    """How a partner's token was authorized at a charger, for the Session and CDR."""

    __tablename__ = "ocpi_authorizations"
    __table_args__ = (Index("ix_ocpi_authorizations_token", "token_id", "charge_point_id"),)

    id: int | None = Field(default=None, primary_key=True)
    token_id: int
    charge_point_id: str | None = Field(default=None, max_length=48)
    method: str = Field(max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    status: str = Field(max_length=16)
    created_at: datetime | None = _utc(nullable=False)


class OcpiSession(SQLModel, table=True):
    """A Session as its token's eMSP gets it (pushed, and for GET sessions)."""

    __tablename__ = "ocpi_sessions"
    __table_args__ = (Index("ix_ocpi_sessions_updated", "partner_id", "last_updated"),)

    partner_id: str = Field(primary_key=True, max_length=64)
    session_id: str = Field(primary_key=True, max_length=36)
    token_id: int
    auth_method: str = Field(max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = _utc(nullable=False)


class OcpiCdr(SQLModel, table=True):
    """A CDR as its token's eMSP gets it: written once, never changed (mod_cdrs)."""

    __tablename__ = "ocpi_cdrs"
    __table_args__ = (Index("ix_ocpi_cdrs_updated", "partner_id", "last_updated"),)

    partner_id: str = Field(primary_key=True, max_length=64)
    cdr_id: str = Field(primary_key=True, max_length=39)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = _utc(nullable=False)


class OcpiReservation(SQLModel, table=True):
    """A partner's reservation_id and the OCPP reservationId csms gave the charger for it
    (mod_commands §ReserveNow Object: the eMSP's id "SHALL NOT be sent directly")."""

    __tablename__ = "ocpi_reservations"

    partner_id: str = Field(primary_key=True, max_length=64)
    reservation_id: str = Field(primary_key=True, max_length=36)
    charge_point_id: str = Field(max_length=48)
    ocpp_reservation_id: int
    created_at: datetime | None = _utc(nullable=False)
