"""roaming tariffs and hubs: tariffs each partner holds, a hub's clients, the party a
Session, CDR or push is for

Revision ID: 0011_roaming_tariffs
Revises: 0010_cluster
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0011_roaming_tariffs"
down_revision: str | None = "0010_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ocpi_partner_tariffs",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("tariff_id", sa.String(length=36), nullable=False),
        sa.Column("last_updated", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "tariff_id"),
    )
    op.create_table(
        "ocpi_hub_clients",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_updated", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "country_code", "party_id"),
    )
    for table in ("ocpi_sessions", "ocpi_cdrs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("owner_country_code", sa.String(length=2), nullable=True))
            batch_op.add_column(sa.Column("owner_party_id", sa.String(length=3), nullable=True))
    with op.batch_alter_table("ocpi_pushes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("to_country_code", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("to_party_id", sa.String(length=3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ocpi_pushes", schema=None) as batch_op:
        batch_op.drop_column("to_party_id")
        batch_op.drop_column("to_country_code")
    for table in ("ocpi_cdrs", "ocpi_sessions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("owner_party_id")
            batch_op.drop_column("owner_country_code")
    op.drop_table("ocpi_hub_clients")
    op.drop_table("ocpi_partner_tariffs")
