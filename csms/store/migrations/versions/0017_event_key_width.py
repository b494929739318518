"""event key width: an event's key is a charger id (48) or, for `circuit.updated`, a
circuit id (64), so the outbox and the webhook delivery log hold 64 characters

Revision ID: 0017_event_key_width
Revises: 0016_allocation_phases
Create Date: 2026-12-07 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_event_key_width"
down_revision: str | None = "0016_allocation_phases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("outbox_events", "webhook_deliveries")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "charge_point_id",
                existing_type=sa.String(length=48),
                type_=sa.String(length=64),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "charge_point_id",
                existing_type=sa.String(length=64),
                type_=sa.String(length=48),
                existing_nullable=False,
            )
