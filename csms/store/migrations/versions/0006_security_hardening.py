"""security hardening: a charger's registration status (accepted, pending, rejected)

Revision ID: 0006_security_hardening
Revises: 0005_tariffs
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_security_hardening"
down_revision: str | None = "0005_tariffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        # Every charger known before this migration was let in: it stays accepted.
        batch_op.add_column(
            sa.Column(
                "registration_status",
                sa.String(length=16),
                nullable=False,
                server_default="accepted",
            )
        )
    op.create_index(
        "ix_charge_points_registration_status",
        "charge_points",
        ["registration_status"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_charge_points_registration_status", table_name="charge_points")
    with op.batch_alter_table("charge_points", schema=None) as batch_op:
        batch_op.drop_column("registration_status")
