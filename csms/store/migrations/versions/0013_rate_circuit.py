"""rate circuit: the circuit a priced session's connector was on at its start; a rate's
target as long as a circuit id

Revision ID: 0013_rate_circuit
Revises: 0012_persisted_path
Create Date: 2026-12-07 10:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_rate_circuit"
down_revision: str | None = "0012_persisted_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A circuit's electricity rate wins over its site's; the circuit is the one at the
    # session start, so a connector moved mid-session is bought where it started.
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("circuit_id", sa.String(length=64), nullable=True))
    # Circuit ids have up to 64 characters (the circuits API); a rate's target had 48.
    with op.batch_alter_table("electricity_rates", schema=None) as batch_op:
        batch_op.alter_column(
            "target",
            existing_type=sa.String(length=48),
            type_=sa.String(length=64),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("electricity_rates", schema=None) as batch_op:
        batch_op.alter_column(
            "target",
            existing_type=sa.String(length=64),
            type_=sa.String(length=48),
            existing_nullable=False,
        )
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        batch_op.drop_column("circuit_id")
