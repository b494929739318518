"""Tariffs, costs and the driver's wallet (docs/tariffs.md).

Money is stored as BigInteger ten-thousandths of the currency unit (csms.core.money)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import UTCDateTime, big_id, utc_column


class TariffRow(SQLModel, table=True):
    """An OCPI 2.2.1 Tariff as the operator last put it; `version` names its snapshot."""

    __tablename__ = "tariffs"

    id: str = Field(primary_key=True, max_length=36)
    version: int
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = utc_column(nullable=False)


class TariffVersion(SQLModel, table=True):
    """Every version of a tariff, kept: a session is priced with the one it started with."""

    __tablename__ = "tariff_versions"

    tariff_id: str = Field(primary_key=True, max_length=36)
    version: int = Field(primary_key=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column(nullable=False)


class TariffGroup(SQLModel, table=True):
    """A named tariff that users or subscription plans are put in."""

    __tablename__ = "tariff_groups"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    tariff_id: str = Field(max_length=36)
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class TariffAssignment(SQLModel, table=True):
    """The tariff of an EVSE (`evse`, target `{chargePointId}*{connectorId}`), a location
    (`location`, target its id) or of everything else (`default`, target "")."""

    __tablename__ = "tariff_assignments"

    scope: str = Field(primary_key=True, max_length=16)
    target: str = Field(primary_key=True, max_length=96)
    tariff_id: str = Field(max_length=36)
    updated_at: datetime | None = utc_column(nullable=False)


class TransactionPricing(SQLModel, table=True):
    """How a transaction is priced: the tariff version resolved at its start, and its cost;
    and what its energy cost to buy.

    A session without a tariff has a row only to be bought: `tariff_id`, `tariff_version`,
    `source` and `time_zone` null, `circuit_id` and `purchase_cost` set (docs/tariffs.md,
    "Purchase cost and margin").
    """

    __tablename__ = "transaction_pricing"

    transaction_id: int = Field(primary_key=True)
    tariff_id: str | None = Field(default=None, max_length=36)
    tariff_version: int | None = Field(default=None)
    # Where the tariff came from: subscription, user, evse, location or default.
    source: str | None = Field(default=None, max_length=16)
    # Indexed: a prepaid driver's open sessions are summed at each reading of each of them.
    user_id: str | None = Field(default=None, max_length=36, index=True)
    prepaid: bool = Field(default=False)
    currency: str = Field(max_length=3)
    time_zone: str | None = Field(default=None, max_length=64)
    # The connector's circuit at the start: its rate wins over the site's (docs/tariffs.md).
    circuit_id: str | None = Field(default=None, max_length=64)
    cost_excl: int | None = Field(default=None, sa_type=BigInteger)
    cost_incl: int | None = Field(default=None, sa_type=BigInteger)
    purchase_cost: int | None = Field(default=None, sa_type=BigInteger)
    parking_s: int | None = Field(default=None)
    # A prepaid session's cost so far (incl. VAT, else excl.), kept at each reading while it
    # runs: the driver's other sessions count it against the balance (docs/tariffs.md).
    running_cost: int | None = Field(default=None, sa_type=BigInteger)
    # Set once, when csms asked the charger to stop because the balance ran out.
    stop_reason: str | None = Field(default=None, max_length=32)
    priced_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)


class ElectricityRate(SQLModel, table=True):
    """Purchase prices for a site (location) or a circuit: time-of-use or a time series."""

    __tablename__ = "electricity_rates"

    id: str = Field(primary_key=True, max_length=36)
    scope: str = Field(max_length=16)
    # A location id (OCPI CiString(36)) or a circuit id (up to 64, as the circuits API).
    target: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    # Time-of-use periods [{dayOfWeek?, startTime, endTime, price}] in the zone below.
    time_of_use: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    time_zone: str = Field(max_length=64)
    updated_at: datetime | None = utc_column(nullable=False)


class ElectricityPrice(SQLModel, table=True):
    """One interval of an uploaded series: the price per kWh from `start` until `end`."""

    __tablename__ = "electricity_prices"

    rate_id: str = Field(primary_key=True, max_length=36)
    start: datetime | None = Field(default=None, sa_type=UTCDateTime, primary_key=True)
    end: datetime | None = utc_column(nullable=False)
    # Per kWh, as decimal text (day-ahead prices have more decimals than money).
    price: str = Field(max_length=32)


class WalletAccount(SQLModel, table=True):
    """A user's wallet: prepaid or not, and the tariff group the user is in."""

    __tablename__ = "wallet_accounts"

    user_id: str = Field(primary_key=True, max_length=36)
    currency: str = Field(max_length=3)
    prepaid: bool = Field(default=False)
    tariff_group_id: str | None = Field(default=None, max_length=36)
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class LedgerEntry(SQLModel, table=True):
    """One posting; a balance is the sum of its user's entries, never a stored number."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # A posting is made once per reference: a resent top-up or a second CDR cannot
        # count twice.
        UniqueConstraint("user_id", "kind", "reference", name="uq_ledger_entries_reference"),
        Index("ix_ledger_entries_user", "user_id", "id"),
    )

    id: int | None = big_id()
    user_id: str = Field(max_length=36)
    # topup, fee, voucher, refund, session, subscription
    kind: str = Field(max_length=16)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=255)
    reference: str = Field(max_length=255)
    created_at: datetime | None = utc_column(nullable=False)


class Voucher(SQLModel, table=True):
    """A voucher code worth an amount, redeemable once."""

    __tablename__ = "vouchers"

    code: str = Field(primary_key=True, max_length=64)
    amount: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    description: str | None = Field(default=None, max_length=255)
    expires_at: datetime | None = utc_column()
    redeemed_by: str | None = Field(default=None, max_length=36)
    redeemed_at: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)


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
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class UserSubscription(SQLModel, table=True):
    """A user's subscription to a plan: active, canceled or expired."""

    __tablename__ = "user_subscriptions"
    __table_args__ = (Index("ix_user_subscriptions_user", "user_id", "status"),)

    id: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(max_length=36)
    plan_id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    auto_renew: bool = Field(default=True)
    period_start: datetime | None = utc_column(nullable=False)
    period_end: datetime | None = utc_column(nullable=False)
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)
