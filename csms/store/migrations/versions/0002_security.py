"""security: hex-password compat, log status, security events, issued certificates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "password_hex_compat", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("log_status", sa.String(length=32), nullable=True))
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("tech_info", sa.Text(), nullable=True),
        sa.Column("remote_address", sa.String(length=64), nullable=True),
        sa.Column("timestamp", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_security_events_cp", "security_events", ["charge_point_id", "id"], unique=False
    )
    op.create_table(
        "issued_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("not_before", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_after", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("issued_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_issued_certificates_cp",
        "issued_certificates",
        ["charge_point_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_issued_certificates_cp", table_name="issued_certificates")
    op.drop_table("issued_certificates")
    op.drop_index("ix_security_events_cp", table_name="security_events")
    op.drop_table("security_events")
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.drop_column("log_status")
        batch_op.drop_column("password_hex_compat")
