"""The platform around the protocol: users, the outbox, locations, security records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import big_id, utc_column


class User(SQLModel, table=True):
    """A driver or fleet who owns id tags."""

    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = utc_column()
    updated_at: datetime | None = utc_column()


class OutboxEvent(SQLModel, table=True):
    """An event written in the same transaction as the change that caused it.

    The relay publishes undelivered rows in `id` order and sets `delivered_at` only after
    the broker's PUBACK; `event_id` is the CloudEvents id, the same on every redelivery.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_pending", "delivered_at", "id"),
        # A cluster partition's pending events (docs/deployment.md, "The outbox relay").
        Index(
            "ix_outbox_events_slot_pending",
            "slot",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
        UniqueConstraint("event_id", name="uq_outbox_events_event_id"),
    )

    id: int | None = big_id()
    event_id: str = Field(max_length=36)
    # The event's key: a charger id, or a circuit id (64) for `circuit.updated`.
    charge_point_id: str = Field(max_length=64)
    type: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    time: datetime | None = utc_column(nullable=False)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = utc_column(nullable=False)
    delivered_at: datetime | None = utc_column()
    # Cluster mode (docs/deployment.md, "Exactly once"): the event's slot (crc32 of the
    # charger id mod 4096; a partition is slot mod partitions) and its relay state: 0 not
    # released to the broker, 2 + g PUBREC received on lease generation g's broker
    # session, so a PUBREL there may have released it (core/cluster.py, RELEASED).
    slot: int = Field(default=0)
    relay_state: int = Field(default=0)


class Location(SQLModel, table=True):
    """An OCPI 2.2.1 Location as the operator described it; its EVSEs come from its chargers."""

    __tablename__ = "locations"

    id: str = Field(primary_key=True, max_length=36)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_updated: datetime | None = utc_column(nullable=False)


class SecurityEvent(SQLModel, table=True):
    """A security event: reported by a charger (SecurityEventNotification) or seen by csms."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_cp", "charge_point_id", "id"),)

    id: int | None = big_id()
    charge_point_id: str = Field(max_length=48)
    # "charger" for SecurityEventNotification, "csms" for what the server itself saw.
    source: str = Field(max_length=16)
    type: str = Field(max_length=50)
    tech_info: str | None = Field(default=None, sa_type=Text)
    remote_address: str | None = Field(default=None, max_length=64)
    timestamp: datetime | None = utc_column(nullable=False)
    received_at: datetime | None = utc_column(nullable=False)


class IssuedCertificate(SQLModel, table=True):
    """A charger certificate csms signed from a SignCertificate CSR."""

    __tablename__ = "issued_certificates"
    __table_args__ = (Index("ix_issued_certificates_cp", "charge_point_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_point_id: str = Field(max_length=48)
    serial_number: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    not_before: datetime | None = utc_column(nullable=False)
    not_after: datetime | None = utc_column(nullable=False)
    pem: str = Field(sa_type=Text)
    issued_at: datetime | None = utc_column(nullable=False)
