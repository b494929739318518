"""running cost: a prepaid session's cost so far, so that all of a driver's open sessions
are counted against their balance (docs/tariffs.md, "Prepaid")

Revision ID: 0015_running_cost
Revises: 0014_untariffed_purchase
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_running_cost"
down_revision: str | None = "0014_untariffed_purchase"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("running_cost", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_transaction_pricing_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        batch_op.drop_index("ix_transaction_pricing_user_id")
        batch_op.drop_column("running_cost")
