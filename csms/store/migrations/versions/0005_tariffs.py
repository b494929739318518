"""tariffs, transaction pricing, electricity rates, wallets, vouchers and subscriptions

Revision ID: 0005_tariffs
Revises: 0004_accounts
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0005_tariffs"
down_revision: str | None = "0004_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = csms.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_updated", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tariff_versions",
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("tariff_id", "version"),
    )
    op.create_table(
        "tariff_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _UTC, nullable=True),
        sa.Column("updated_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tariff_assignments",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=96), nullable=False),
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("scope", "target"),
    )
    op.create_table(
        "transaction_pricing",
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("tariff_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("prepaid", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("cost_excl", sa.BigInteger(), nullable=True),
        sa.Column("cost_incl", sa.BigInteger(), nullable=True),
        sa.Column("purchase_cost", sa.BigInteger(), nullable=True),
        sa.Column("parking_s", sa.Integer(), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("priced_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("transaction_id"),
    )
    op.create_table(
        "electricity_rates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=48), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("time_of_use", sa.JSON(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "electricity_prices",
        sa.Column("rate_id", sa.String(length=36), nullable=False),
        sa.Column("start", _UTC, nullable=False),
        sa.Column("end", _UTC, nullable=False),
        sa.Column("price", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("rate_id", "start"),
    )
    op.create_table(
        "wallet_accounts",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("prepaid", sa.Boolean(), nullable=False),
        sa.Column("tariff_group_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", _UTC, nullable=True),
        sa.Column("updated_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "kind", "reference", name="uq_ledger_entries_reference"),
    )
    op.create_index("ix_ledger_entries_user", "ledger_entries", ["user_id", "id"], unique=False)
    op.create_table(
        "vouchers",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("redeemed_by", sa.String(length=36), nullable=True),
        sa.Column("redeemed_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "subscription_plans",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=False),
        sa.Column("tariff_group_id", sa.String(length=36), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("created_at", _UTC, nullable=True),
        sa.Column("updated_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "user_subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("period_start", _UTC, nullable=False),
        sa.Column("period_end", _UTC, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_user_subscriptions_user", "user_subscriptions", ["user_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_user_subscriptions_user", table_name="user_subscriptions")
    op.drop_table("user_subscriptions")
    op.drop_table("subscription_plans")
    op.drop_table("vouchers")
    op.drop_index("ix_ledger_entries_user", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("wallet_accounts")
    op.drop_table("electricity_prices")
    op.drop_table("electricity_rates")
    op.drop_table("transaction_pricing")
    op.drop_table("tariff_assignments")
    op.drop_table("tariff_groups")
    op.drop_table("tariff_versions")
    op.drop_table("tariffs")
