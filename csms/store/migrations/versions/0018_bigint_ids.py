"""bigint ids: the surrogate ids of the tables that grow with traffic are 64-bit on
PostgreSQL, the columns and their sequences (csms/store/tables/columns.py, BIG_ID)

A SERIAL id is an int4 fed by a sequence `AS integer`: both stop at 2^31 - 1, a week of
outbox rows and four days of meter rows at the capacity model's peak (docs/performance.md,
"Capacity model (on paper)"). Each column becomes BIGINT and its sequence `AS bigint`
(whose MAXVALUE, left at the old type's maximum, follows the new type:
https://www.postgresql.org/docs/current/sql-altersequence.html). The columns that hold
these ids elsewhere (webhook_subscriptions.cursor, webhook_deliveries.outbox_id,
webhook_replays.first_id/last_id, ocpi_feed.last_event_id) were BIGINT from the start.
Left as they are: transactions.id and reservations.id (the OCPP transactionId and
reservationId, int32 at the charger), and the ids of tables that grow by one row per
certificate, replay or roaming token, not with traffic (issued_certificates,
webhook_replays, ocpi_tokens).

On PostgreSQL only. SQLite's INTEGER PRIMARY KEY is the rowid, 64-bit already
(https://sqlite.org/lang_createtable.html#rowid); a BIGINT there would stop it being one.

Cost: ALTER COLUMN ... TYPE bigint rewrites each table and its indexes under an ACCESS
EXCLUSIVE lock, which blocks reads and writes of the table until the migration commits
(https://www.postgresql.org/docs/current/sql-altertable.html, "Notes"): a day of the
outbox and of the delivery log, but all of meter_values and status_notifications, which
csms keeps in full. Run `csms migrate` with the nodes stopped (docs/deployment.md,
"Draining and upgrading"). A column already bigint (converted online beforehand) is
left as it is; its sequence is still set AS bigint.

Downgrade reverses it, and fails (changing nothing) once an id has passed 2^31 - 1.

Revision ID: 0018_bigint_ids
Revises: 0017_event_key_width
Create Date: 2026-12-07 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_bigint_ids"
down_revision: str | None = "0017_event_key_width"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table whose `id` is BIG_ID in the models.
_TABLES = (
    "outbox_events",
    "meter_values",
    "status_notifications",
    "charger_messages",
    "commands",
    "security_events",
    "webhook_deliveries",
    "ocpi_pushes",
    "ocpi_authorizations",
    "circuit_allocation_history",
    "ledger_entries",
)


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")


def _retype(sql_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in _TABLES:
        # A column already of the type (converted online beforehand, docs/deployment.md)
        # is left alone: ALTER TYPE would still take its lock.
        current = bind.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_schema ="
                " current_schema() AND table_name = :table AND column_name = 'id'"
            ),
            {"table": table},
        ).scalar_one()
        if current != sql_type:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN id TYPE {sql_type}")
        # The sequence by what owns it, not by the name SERIAL gave it.
        sequence = bind.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
        ).scalar_one()
        op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")
