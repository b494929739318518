"""Webhook subscriptions, deliveries and replays (docs/webhooks.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Text,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import big_id, utc_column


class WebhookSubscription(SQLModel, table=True):
    """A webhook subscription and its cursor into the outbox (docs/webhooks.md).

    `cursor` is the last outbox id whose events this subscription has had (or did not
    want): deliveries are read from the outbox, never copied per subscription. The secrets
    are kept as they are shown (`whsec_...`), since signing needs them.
    """

    __tablename__ = "webhook_subscriptions"

    id: str = Field(primary_key=True, max_length=36)
    url: str = Field(sa_type=Text)
    event_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    charge_point_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    description: str | None = Field(default=None, sa_type=Text)
    enabled: bool = Field(default=True)
    # active, failing or disabled (core.webhooks.SubscriptionStatus), and why.
    status: str = Field(max_length=16)
    status_reason: str | None = Field(default=None, sa_type=Text)
    secret: str = Field(sa_type=Text)
    previous_secret: str | None = Field(default=None, sa_type=Text)
    previous_secret_until: datetime | None = utc_column()
    cursor: int = Field(default=0, sa_type=BigInteger)
    failing_since: datetime | None = utc_column()
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One delivery attempt: the delivery log of GET /webhooks/{id}/deliveries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
        Index("ix_webhook_deliveries_attempted", "attempted_at"),
    )

    id: int | None = big_id()
    subscription_id: str = Field(max_length=36)
    outbox_id: int = Field(sa_type=BigInteger)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=64)
    charge_point_id: str = Field(max_length=64)  # the event's key (outbox_events)
    attempt: int
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, sa_type=Text)
    latency_ms: float
    response_body: str | None = Field(default=None, sa_type=Text)
    replay: bool = Field(default=False)
    attempted_at: datetime | None = utc_column(nullable=False)


class WebhookReplay(SQLModel, table=True):
    """Outbox rows to send a subscription again (POST /webhooks/{id}/replay), until done."""

    __tablename__ = "webhook_replays"

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=36)
    first_id: int = Field(sa_type=BigInteger)
    last_id: int = Field(sa_type=BigInteger)
    created_at: datetime | None = utc_column(nullable=False)
