"""tx flags: a Start key unique among open transactions, exact-repeat sample dedup,
samples after the stop, the estimated CDR

Revision ID: 0003_tx_flags
Revises: 0002
Create Date: 2026-12-07 09:00:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from csms.store.tables import UTCDateTime

revision: str = "0003_tx_flags"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_START_KEY = ["charge_point_id", "connector_id", "id_tag", "start_timestamp", "meter_start"]
_SAMPLE_KEY = [
    "charge_point_id",
    "connector_id",
    "timestamp",
    "measurand",
    "phase",
    "location",
    "context",
]
# Spelled as csms.store.tables.OPEN_FOR_THE_CHARGER (kept literal: a migration is frozen).
_OPEN = "charger_stopped = false"
_DIGEST_BATCH = 1000
_TRANSACTION_COLUMNS_0002 = [
    "id",
    "charge_point_id",
    "connector_id",
    "id_tag",
    "start_id_tag_status",
    "meter_start",
    "start_timestamp",
    "reservation_id",
    "meter_stop",
    "stop_timestamp",
    "stop_reason",
    "stop_id_tag",
    "charger_stopped",
    "last_register_wh",
    "orphan_ref",
    "flags",
    "created_at",
    "updated_at",
]


def upgrade() -> None:
    # Every row that was unique on the whole Start key is unique among the open ones: the
    # partial index takes the existing rows as they are.
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_transactions_on_sqlite()
    else:
        op.drop_constraint("uq_transactions_start", "transactions", type_="unique")
        op.add_column("transactions", sa.Column("estimated_cdr", sa.JSON(), nullable=True))
    op.create_index(
        "uq_transactions_start_open",
        "transactions",
        _START_KEY,
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    op.add_column(
        "meter_values",
        sa.Column("after_stop", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("meter_values", sa.Column("value_digest", sa.String(length=32), nullable=True))
    _fill_value_digests()
    # Samples already stored after their transaction's stop get the flag they lacked.
    op.execute(
        "UPDATE meter_values SET after_stop = true WHERE EXISTS (SELECT 1 FROM transactions t"
        " WHERE t.id = meter_values.transaction_id AND t.stop_timestamp < meter_values.timestamp)"
    )
    # The old key is narrower than the new one: rows unique on it stay unique.
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.alter_column("value_digest", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint("uq_meter_values_sample", type_="unique")
        batch_op.create_unique_constraint(
            "uq_meter_values_sample", [*_SAMPLE_KEY, "unit", "format", "value_digest"]
        )


def _rebuild_transactions_on_sqlite() -> None:
    """SQLite keeps a table's UNIQUE constraint for its lifetime: build the table anew.

    Not with batch_alter_table: meter_values refers to transactions, and with foreign keys
    on, dropping the old table orphans those rows for good (the copy was made before the
    drop). Here the rows go into the new table after it, which satisfies the deferred
    checks again by the commit.
    """
    op.execute("CREATE TABLE _transactions_0002 AS SELECT * FROM transactions WHERE 0")
    # An INSERT: the sqlite3 driver opens its transaction before the first DML statement,
    # and the pragma below lasts only until that transaction's commit.
    op.execute("INSERT INTO _transactions_0002 SELECT * FROM transactions")
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.drop_table("transactions")
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=True),
        sa.Column("start_id_tag_status", sa.String(length=16), nullable=True),
        sa.Column("meter_start", sa.BigInteger(), nullable=True),
        sa.Column("start_timestamp", UTCDateTime(timezone=True), nullable=True),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("meter_stop", sa.BigInteger(), nullable=True),
        sa.Column("stop_timestamp", UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("stop_id_tag", sa.String(length=20), nullable=True),
        sa.Column("charger_stopped", sa.Boolean(), nullable=False),
        sa.Column("last_register_wh", sa.Float(), nullable=True),
        sa.Column("orphan_ref", sa.BigInteger(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("estimated_cdr", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "charge_point_id", "orphan_ref", "stop_timestamp", name="uq_transactions_orphan"
        ),
    )
    columns = ", ".join(_TRANSACTION_COLUMNS_0002)
    op.execute(f"INSERT INTO transactions ({columns}) SELECT {columns} FROM _transactions_0002")
    op.drop_table("_transactions_0002")
    op.create_index(
        "ix_transactions_cp_connector",
        "transactions",
        ["charge_point_id", "connector_id"],
        unique=False,
    )


def _fill_value_digests() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # PostgreSQL's md5() of the UTF-8 text is what csms computes for new samples.
        op.execute("UPDATE meter_values SET value_digest = md5(value)")
        return
    table = sa.table("meter_values", sa.column("id", sa.Integer), sa.column("value", sa.Text))
    digest = sa.table("meter_values", sa.column("id", sa.Integer), sa.column("value_digest"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.value)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(_DIGEST_BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            sa.update(digest)
            .where(digest.c.id == sa.bindparam("row_id"))
            .values(value_digest=sa.bindparam("digest")),
            [
                {
                    "row_id": row_id,
                    "digest": hashlib.md5(value.encode(), usedforsecurity=False).hexdigest(),
                }
                for row_id, value in rows
            ],
        )
        last = rows[-1][0]


def downgrade() -> None:
    # The old keys are narrower: refuse rather than delete what they cannot hold.
    _refuse_if_repeated("meter_values", _SAMPLE_KEY, "samples differing only in value")
    _refuse_if_repeated("transactions", _START_KEY, "transactions reusing a stopped Start key")
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.drop_constraint("uq_meter_values_sample", type_="unique")
        batch_op.create_unique_constraint("uq_meter_values_sample", _SAMPLE_KEY)
        batch_op.drop_column("value_digest")
        batch_op.drop_column("after_stop")
    op.drop_index("uq_transactions_start_open", table_name="transactions")
    if op.get_bind().dialect.name == "sqlite":
        # A UNIQUE constraint cannot be added to a SQLite table; a unique index is the same
        # guarantee (0001 declared a constraint; only the name of its index differs).
        op.drop_column("transactions", "estimated_cdr")
        op.create_index("uq_transactions_start", "transactions", _START_KEY, unique=True)
        return
    op.drop_column("transactions", "estimated_cdr")
    op.create_unique_constraint("uq_transactions_start", "transactions", _START_KEY)


def _refuse_if_repeated(table: str, key: list[str], what: str) -> None:
    columns = ", ".join(key)
    repeated = op.get_bind().execute(
        sa.text(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {key[-1]} IS NOT NULL"
            f" GROUP BY {columns} HAVING count(*) > 1) AS repeated"
        )
    )
    if repeated.scalar_one():
        raise RuntimeError(f"cannot downgrade below 0003_tx_flags: {what} exist")
