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
    text,
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


# A transaction whose StopTransaction the charger has not sent: the only ones a repeated
# StartTransaction may match. Spelled the same in the index and in ON CONFLICT, so that
# PostgreSQL infers the partial index; SQLite reads `false` as 0.
OPEN_FOR_THE_CHARGER = "charger_stopped = false"


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
    # md5 of the value (hex), for the uniqueness of a sample only.
    value_digest: str = Field(max_length=32)
    # Timestamped after its transaction's stop: kept, but out of its energy and CDR.
    after_stop: bool = Field(default=False)


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


class Account(SQLModel, table=True):
    """An operator who logs in to the dashboard: viewer, operator or admin."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("username", name="uq_accounts_username"),)

    id: str = Field(primary_key=True, max_length=36)
    username: str = Field(max_length=64)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    created_at: datetime | None = _utc(nullable=False)
    updated_at: datetime | None = _utc(nullable=False)
    last_login_at: datetime | None = _utc()


class AccountSession(SQLModel, table=True):
    """A dashboard login; only a digest of the cookie's token is kept."""

    __tablename__ = "account_sessions"
    __table_args__ = (Index("ix_account_sessions_account", "account_id"),)

    token_digest: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(max_length=36, foreign_key="accounts.id", ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    remote_address: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = _utc(nullable=False)
    expires_at: datetime | None = _utc(nullable=False)


class ApiKey(SQLModel, table=True):
    """A machine client's API key with its scopes; only a digest of the key is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_digest", name="uq_api_keys_digest"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    key_digest: str = Field(max_length=64)
    # The key's first characters, to tell keys apart in a list without revealing them.
    hint: str = Field(max_length=16)
    created_by: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = _utc(nullable=False)


# -- tariffs, costs and the driver's wallet (docs/tariffs.md) -----------------------------
# Money is stored as BigInteger ten-thousandths of the currency unit (csms.core.money).


class TariffRow(SQLModel, table=True):
    """An OCPI 2.2.1 Tariff as the operator last put it; `version` names its snapshot."""

    __tablename__ = "tariffs"

    id: str = Field(primary_key=True, max_length=36)
    version: int
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = _utc(nullable=False)


class TariffVersion(SQLModel, table=True):
    """Every version of a tariff, kept: a session is priced with the one it started with."""

    __tablename__ = "tariff_versions"

    tariff_id: str = Field(primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _utc(nullable=False)


class TariffGroup(SQLModel, table=True):
    """A named tariff that users or subscription plans are put in."""

    __tablename__ = "tariff_groups"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    tariff_id: str = Field(max_length=36)
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class TariffAssignment(SQLModel, table=True):
    """The tariff of an EVSE (`evse`, target `{chargePointId}*{connectorId}`), a location
    (`location`, target its id) or of everything else (`default`, target "")."""

    __tablename__ = "tariff_assignments"

    scope: str = Field(primary_key=True, max_length=16)
    target: str = Field(primary_key=True, max_length=96)
    tariff_id: str = Field(max_length=36)
    updated_at: datetime | None = _utc(nullable=False)


class TransactionPricing(SQLModel, table=True):
    """How a transaction is priced: the tariff version resolved at its start, and its cost."""

    __tablename__ = "transaction_pricing"

    transaction_id: int = Field(primary_key=True)
    tariff_id: str = Field(max_length=36)
    tariff_version: int
    # Where the tariff came from: subscription, user, evse, location or default.
    source: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=36)
    prepaid: bool = Field(default=False)
    currency: str = Field(max_length=3)
    time_zone: str = Field(max_length=64)
    cost_excl: int | None = Field(default=None, sa_type=BigInteger)
    cost_incl: int | None = Field(default=None, sa_type=BigInteger)
    purchase_cost: int | None = Field(default=None, sa_type=BigInteger)
    parking_s: int | None = Field(default=None)
    # Set once, when csms asked the charger to stop because the balance ran out.
    stop_reason: str | None = Field(default=None, max_length=32)
    priced_at: datetime | None = _utc()
    created_at: datetime | None = _utc(nullable=False)


class ElectricityRate(SQLModel, table=True):
    """Purchase prices for a site (location) or a circuit: time-of-use or a time series."""

    __tablename__ = "electricity_rates"

    id: str = Field(primary_key=True, max_length=36)
    scope: str = Field(max_length=16)
    target: str = Field(max_length=48)
    currency: str = Field(max_length=3)
    # Time-of-use periods [{dayOfWeek?, startTime, endTime, price}] in the zone below.
    time_of_use: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    time_zone: str = Field(max_length=64)
    updated_at: datetime | None = _utc(nullable=False)


class ElectricityPrice(SQLModel, table=True):
    """One interval of an uploaded series: the price per kWh from `start` until `end`."""

    __tablename__ = "electricity_prices"

    rate_id: str = Field(primary_key=True, max_length=36)
    start: datetime | None = Field(default=None, sa_type=UTCDateTime, primary_key=True)
    end: datetime | None = _utc(nullable=False)
    # Per kWh, as decimal text (day-ahead prices have more decimals than money).
    price: str = Field(max_length=32)


class WalletAccount(SQLModel, table=True):
    """A user's wallet: prepaid or not, and the tariff group the user is in."""

    __tablename__ = "wallet_accounts"

    user_id: str = Field(primary_key=True, max_length=36)
    currency: str = Field(max_length=3)
    prepaid: bool = Field(default=False)
    tariff_group_id: str | None = Field(default=None, max_length=36)
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class LedgerEntry(SQLModel, table=True):
    """One posting; a balance is the sum of its user's entries, never a stored number."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # A posting is made once per reference: a resent top-up or a second CDR cannot
        # count twice.
        UniqueConstraint("user_id", "kind", "reference", name="uq_ledger_entries_reference"),
        Index("ix_ledger_entries_user", "user_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=36)
    # topup, fee, voucher, refund, session, subscription
    kind: str = Field(max_length=16)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=255)
    reference: str = Field(max_length=255)
    created_at: datetime | None = _utc(nullable=False)


class Voucher(SQLModel, table=True):
    """A voucher code worth an amount, redeemable once."""

    __tablename__ = "vouchers"

    code: str = Field(primary_key=True, max_length=64)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    description: str | None = Field(default=None, max_length=255)
    expires_at: datetime | None = _utc()
    redeemed_by: str | None = Field(default=None, max_length=36)
    redeemed_at: datetime | None = _utc()
    created_at: datetime | None = _utc(nullable=False)


class SubscriptionPlan(SQLModel, table=True):
    """A plan: its price per period, the tariff group it grants, renewing or not."""

    __tablename__ = "subscription_plans"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    price: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    period_days: int
    tariff_group_id: str = Field(max_length=36)
    auto_renew: bool = Field(default=True)
    created_at: datetime | None = _utc()
    updated_at: datetime | None = _utc()


class UserSubscription(SQLModel, table=True):
    """A user's subscription to a plan: active, canceled or expired."""

    __tablename__ = "user_subscriptions"
    __table_args__ = (Index("ix_user_subscriptions_user", "user_id", "status"),)

    id: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(max_length=36)
    plan_id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    auto_renew: bool = Field(default=True)
    period_start: datetime | None = _utc(nullable=False)
    period_end: datetime | None = _utc(nullable=False)
    created_at: datetime | None = _utc(nullable=False)
    updated_at: datetime | None = _utc(nullable=False)


class WebhookSubscription(SQLModel, table=True):
    """A webhook subscription and its cursor into the outbox (docs/webhooks.md).

    `cursor` is the last outbox id whose events this subscription has had (or did not
    want): deliveries are read from the outbox, never copied per subscription. The secrets
    are kept as they are shown (`whsec_...`), since signing needs them.
    """

    __tablename__ = "webhook_subscriptions"

    id: str = Field(primary_key=True, max_length=36)
    url: str = Field(sa_type=Text)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    charge_point_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    description: str | None = Field(default=None, sa_type=Text)
    enabled: bool = Field(default=True)
    # active, failing or disabled (core.webhooks.SubscriptionStatus), and why.
    status: str = Field(max_length=16)
    status_reason: str | None = Field(default=None, sa_type=Text)
    secret: str = Field(sa_type=Text)
    previous_secret: str | None = Field(default=None, sa_type=Text)
    previous_secret_until: datetime | None = _utc()
    cursor: int = Field(default=0, sa_type=BigInteger)
    failing_since: datetime | None = _utc()
    created_at: datetime | None = _utc(nullable=False)
    updated_at: datetime | None = _utc(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt: the delivery log of GET /webhooks/{id}/deliveries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
        Index("ix_webhook_deliveries_attempted", "attempted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=36)
    outbox_id: int = Field(sa_type=BigInteger)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=64)
    charge_point_id: str = Field(max_length=48)
    attempt: int
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, sa_type=Text)
    latency_ms: float
    response_body: str | None = Field(default=None, sa_type=Text)
    replay: bool = Field(default=False)
    attempted_at: datetime | None = _utc(nullable=False)


class WebhookReplay(SQLModel, table=True):
    """Outbox rows to send a subscription again (POST /webhooks/{id}/replay), until done."""

    __tablename__ = "webhook_replays"

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=36)
    first_id: int = Field(sa_type=BigInteger)
    last_id: int = Field(sa_type=BigInteger)
    created_at: datetime | None = _utc(nullable=False)


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
