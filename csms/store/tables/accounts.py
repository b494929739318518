"""Operator accounts, their sessions and API keys (docs/dashboard.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    Index,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import utc_column


class Account(SQLModel, table=True):
    """An operator who logs in to the dashboard: viewer, operator or admin."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("username", name="uq_accounts_username"),)

    id: str = Field(primary_key=True, max_length=36)
    username: str = Field(max_length=64)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)
    last_login_at: datetime | None = utc_column()


class AccountSession(SQLModel, table=True):
    """A dashboard login; only a digest of the cookie's token is kept."""

    __tablename__ = "account_sessions"
    __table_args__ = (Index("ix_account_sessions_account", "account_id"),)

    token_digest: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(max_length=36, foreign_key="accounts.id", ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    remote_address: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = utc_column(nullable=False)
    expires_at: datetime | None = utc_column(nullable=False)


class ApiKey(SQLModel, table=True):
    """A machine client's API key with its scopes; only a digest of the key is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_digest", name="uq_api_keys_digest"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    key_digest: str = Field(max_length=64)
    # The key's first characters, to tell keys apart in a list without revealing them.
    hint: str = Field(max_length=16)
    created_by: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = utc_column(nullable=False)
