"""allocation phases: the grid phases each allocation counts on, kept with the allocation
and its history (docs/load-balancing.md, "Circuits")

Revision ID: 0016_allocation_phases
Revises: 0015_running_cost
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_allocation_phases"
down_revision: str | None = "0015_running_cost"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Nullable: rows written before this revision did not say; readers take the member's phases.
_TABLES = ("circuit_allocations", "circuit_allocation_history")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("phases", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("phases")
