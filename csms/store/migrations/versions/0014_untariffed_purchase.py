"""untariffed purchase: a session without a tariff is bought too, so its transaction_pricing
row (circuit at the start, purchase cost) has no tariff

Revision ID: 0014_untariffed_purchase
Revises: 0013_rate_circuit
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_untariffed_purchase"
down_revision: str | None = "0013_rate_circuit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns only a tariffed session has (docs/tariffs.md, "Purchase cost and margin").
_TARIFF_COLUMNS = (
    ("tariff_id", sa.String(length=36)),
    ("tariff_version", sa.Integer()),
    ("source", sa.String(length=16)),
    ("time_zone", sa.String(length=64)),
)


def upgrade() -> None:
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        for name, type_ in _TARIFF_COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=True)


def downgrade() -> None:
    # Rows of sessions without a tariff cannot live in the old table: they only held a
    # purchase cost, which the old schema keeps for tariffed sessions alone.
    op.execute("DELETE FROM transaction_pricing WHERE tariff_id IS NULL")
    with op.batch_alter_table("transaction_pricing", schema=None) as batch_op:
        for name, type_ in _TARIFF_COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
