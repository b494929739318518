"""ocpi partners: roaming partners, their locations, pushes, tokens, sessions and CDRs

Revision ID: 0008_ocpi_partners
Revises: 0007_webhooks
Create Date: 2026-12-07 03:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import csms.store.tables

revision: str = "0008_ocpi_partners"
down_revision: str | None = "0007_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "ocpi_authorizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("authorization_reference", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ocpi_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpi_authorizations_token", ["token_id", "charge_point_id"], unique=False
        )

    op.create_table(
        "ocpi_cdrs",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("cdr_id", sa.String(length=39), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_updated", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "cdr_id"),
    )
    with op.batch_alter_table("ocpi_cdrs", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_cdrs_updated", ["partner_id", "last_updated"], unique=False)

    op.create_table(
        "ocpi_feed",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "ocpi_partner_locations",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("charge_point_ids", sa.JSON(), nullable=True),
        sa.Column("sent", sa.JSON(), nullable=True),
        sa.Column("updated_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "location_id"),
    )
    op.create_table(
        "ocpi_partners",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("versions_url", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=8), nullable=True),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("their_roles", sa.JSON(), nullable=False),
        sa.Column("token_a_hash", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("outgoing_token", sa.String(length=64), nullable=True),
        sa.Column("unencoded_token", sa.Boolean(), nullable=False),
        sa.Column("publish_all", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("registered_at", csms.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ocpi_partners", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_partners_token", ["token_hash"], unique=False)
        batch_op.create_index("ix_ocpi_partners_token_a", ["token_a_hash"], unique=False)

    op.create_table(
        "ocpi_pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=True),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_at", csms.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ocpi_pushes", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_pushes_object", ["partner_id", "object_key"], unique=False)
        batch_op.create_index(
            "ix_ocpi_pushes_partner", ["partner_id", "failed_at", "id"], unique=False
        )

    op.create_table(
        "ocpi_reservations",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("reservation_id", sa.String(length=36), nullable=False),
        sa.Column("charge_point_id", sa.String(length=48), nullable=False),
        sa.Column("ocpp_reservation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "reservation_id"),
    )
    op.create_table(
        "ocpi_sessions",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("auth_method", sa.String(length=16), nullable=False),
        sa.Column("authorization_reference", sa.String(length=36), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("last_updated", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "session_id"),
    )
    with op.batch_alter_table("ocpi_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ocpi_sessions_updated", ["partner_id", "last_updated"], unique=False
        )

    op.create_table(
        "ocpi_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("id_tag", sa.String(length=20), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=False),
        sa.Column("whitelist", sa.String(length=16), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("last_updated", csms.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("country_code", "party_id", "uid", "type", name="uq_ocpi_tokens_uid"),
    )
    with op.batch_alter_table("ocpi_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_ocpi_tokens_id_tag", ["id_tag"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ocpi_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_tokens_id_tag")

    op.drop_table("ocpi_tokens")
    with op.batch_alter_table("ocpi_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_sessions_updated")

    op.drop_table("ocpi_sessions")
    op.drop_table("ocpi_reservations")
    with op.batch_alter_table("ocpi_pushes", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_pushes_partner")
        batch_op.drop_index("ix_ocpi_pushes_object")

    op.drop_table("ocpi_pushes")
    with op.batch_alter_table("ocpi_partners", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_partners_token_a")
        batch_op.drop_index("ix_ocpi_partners_token")

    op.drop_table("ocpi_partners")
    op.drop_table("ocpi_partner_locations")
    op.drop_table("ocpi_feed")
    with op.batch_alter_table("ocpi_cdrs", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_cdrs_updated")

    op.drop_table("ocpi_cdrs")
    with op.batch_alter_table("ocpi_authorizations", schema=None) as batch_op:
        batch_op.drop_index("ix_ocpi_authorizations_token")

    op.drop_table("ocpi_authorizations")
