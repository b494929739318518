"""cluster: nodes, charger ownership, leases; outbox slot and relay state

Revision ID: 0010_cluster
Revises: 0009_circuits
Create Date: 2026-12-07 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0010_cluster"
down_revision: str | None = "0009_circuits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = csms.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cluster_nodes",
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("heartbeat_at", UTC, nullable=False),
        sa.Column("lease_until", UTC, nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("chargers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_table(
        "charger_owners",
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("since", UTC, nullable=False),
        sa.PrimaryKeyConstraint("charge_point_id"),
    )
    with op.batch_alter_table("charger_owners", schema=None) as batch_op:
        batch_op.create_index("ix_charger_owners_node", ["node_id"], unique=False)
    op.create_table(
        "cluster_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("relay_state", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_outbox_events_slot_pending",
            ["slot", "id"],
            unique=False,
            postgresql_where=sa.text("delivered_at IS NULL"),
            sqlite_where=sa.text("delivered_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_slot_pending")
        batch_op.drop_column("relay_state")
        batch_op.drop_column("slot")
    op.drop_table("cluster_leases")
    with op.batch_alter_table("charger_owners", schema=None) as batch_op:
        batch_op.drop_index("ix_charger_owners_node")
    op.drop_table("charger_owners")
    op.drop_table("cluster_nodes")
