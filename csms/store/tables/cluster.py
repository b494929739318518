"""Scale-out (docs/deployment.md): the nodes, who owns which charger, and the leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import utc_column


class ClusterNode(SQLModel, table=True):
    """A csms node: its heartbeat lease, and where its HTTP API listens (for operators)."""

    __tablename__ = "cluster_nodes"

    node_id: str = Field(primary_key=True, max_length=64)
    started_at: datetime | None = utc_column(nullable=False)
    heartbeat_at: datetime | None = utc_column(nullable=False)
    # Past this the node is dead: its chargers are disconnected and its leases adopted.
    lease_until: datetime | None = utc_column(nullable=False)
    draining: bool = Field(default=False)
    chargers: int = Field(default=0)


class ChargerOwner(SQLModel, table=True):
    """Which node holds a charger's WebSocket, and the generation of that connection.

    A reconnect anywhere takes a higher generation; a disconnect is recorded only by the
    node and generation that still own the row (docs/deployment.md, "Connection ownership").
    """

    __tablename__ = "charger_owners"
    __table_args__ = (Index("ix_charger_owners_node", "node_id"),)

    charge_point_id: str = Field(primary_key=True, max_length=48)
    node_id: str = Field(max_length=64)
    generation: int = Field(sa_column=Column(BigInteger, nullable=False))
    since: datetime | None = utc_column(nullable=False)


class ClusterLease(SQLModel, table=True):
    """A named lease: `leader` (timers, deliveries) or `relay:{n}` (an outbox partition).

    `generation` grows with every change of holder; writes made under a lease check it
    (a fencing token), so a node that lost its lease cannot write as its holder.
    """

    __tablename__ = "cluster_leases"

    name: str = Field(primary_key=True, max_length=64)
    node_id: str | None = Field(default=None, max_length=64)
    generation: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime | None = utc_column(nullable=False)
