"""circuits: circuit trees, members, allocations and their history, what the balancer learned
per charger

Revision ID: 0009_circuits
Revises: 0008_ocpi_partners
Create Date: 2026-12-07 05:50:15.161159
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0009_circuits"
down_revision: str | None = "0008_ocpi_partners"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=255), nullable=True))
    op.create_table(
        "charger_balancing",
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("honours_limits", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id"),
    )
    op.create_table(
        "circuit_allocation_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.String(length=64), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("limit_a", sa.Float(), nullable=False),
        sa.Column("previous_a", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("circuit_allocation_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_circuit_allocation_history_circuit", ["circuit_id", "id"], unique=False
        )

    op.create_table(
        "circuit_allocations",
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("limit_a", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_until", csms.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "connector_id"),
    )
    with op.batch_alter_table("circuit_allocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_circuit_allocations_circuit_id"), ["circuit_id"], unique=False
        )

    op.create_table(
        "circuit_members",
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("circuit_id", sa.String(length=64), nullable=False),
        sa.Column("phase_rotation", sa.String(length=3), nullable=False),
        sa.Column("phases", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("min_current_a", sa.Float(), nullable=False),
        sa.Column("max_current_a", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id", "connector_id"),
    )
    with op.batch_alter_table("circuit_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_circuit_members_circuit_id"), ["circuit_id"], unique=False
        )

    op.create_table(
        "circuits",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("phase_limits_a", sa.JSON(), nullable=False),
        sa.Column("base_load_a", sa.JSON(), nullable=True),
        sa.Column("safety_margin_a", sa.Float(), nullable=False),
        sa.Column("created_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("circuits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_circuits_parent_id"), ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("charging_profiles", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("circuits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuits_parent_id"))

    op.drop_table("circuits")
    with op.batch_alter_table("circuit_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuit_members_circuit_id"))

    op.drop_table("circuit_members")
    with op.batch_alter_table("circuit_allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_circuit_allocations_circuit_id"))

    op.drop_table("circuit_allocations")
    with op.batch_alter_table("circuit_allocation_history", schema=None) as batch_op:
        batch_op.drop_index("ix_circuit_allocation_history_circuit")

    op.drop_table("circuit_allocation_history")
    op.drop_table("charger_balancing")
