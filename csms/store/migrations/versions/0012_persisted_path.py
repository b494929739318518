"""persisted path: connector statuses indexed by time (a stopped session's parking time)

Revision ID: 0012_persisted_path
Revises: 0011_roaming_tariffs
Create Date: 2026-12-07 06:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_persisted_path"
down_revision: str | None = "0011_roaming_tariffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The last status before a session's start was found by reading every status of its
    # connector; with the time in the index it is one index probe, however long the history.
    with op.batch_alter_table("status_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_notifications_cp_time",
            ["charge_point_id", "connector_id", "timestamp"],
            unique=False,
        )
        batch_op.drop_index("ix_status_notifications_cp")


def downgrade() -> None:
    with op.batch_alter_table("status_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_status_notifications_cp", ["charge_point_id", "connector_id"], unique=False
        )
        batch_op.drop_index("ix_status_notifications_cp_time")
