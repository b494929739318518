"""Circuits, their members, the balancer's allocations and what it learned per charger
(docs/load-balancing.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from csms.store.tables.columns import big_id, utc_column


class Circuit(SQLModel, table=True):
    """A node of a circuit tree: per-phase limits and base load in amps."""

    __tablename__ = "circuits"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    parent_id: str | None = Field(default=None, max_length=64, index=True)
    phase_limits_a: list[float] = Field(sa_column=Column(JSON, nullable=False))
    base_load_a: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    safety_margin_a: float = Field(default=0.5)
    created_at: datetime | None = utc_column(nullable=False)
    updated_at: datetime | None = utc_column(nullable=False)


class CircuitMember(SQLModel, table=True):
    """A charger (connector_id 0: all its connectors, on one feed) or one connector on a
    circuit. A connector belongs to one circuit at most."""

    __tablename__ = "circuit_members"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    connector_id: int = Field(primary_key=True)
    circuit_id: str = Field(max_length=64, index=True)
    # Which grid phases feed the charger's L1, L2, L3: RST, STR or TRS.
    phase_rotation: str = Field(default="RST", max_length=3)
    phases: int = Field(default=3)
    priority: int = Field(default=0)
    min_current_a: float = Field(default=6.0)
    max_current_a: float = Field(default=32.0)


class ChargerBalancing(SQLModel, table=True):
    """What the balancer learned about a charger: the rung of the fallback ladder that works,
    and whether it keeps the limits it accepts."""

    __tablename__ = "charger_balancing"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    strategy: str = Field(max_length=32)
    honours_limits: str = Field(default="unknown", max_length=16)
    note: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime | None = utc_column(nullable=False)


class CircuitAllocation(SQLModel, table=True):
    """The limit a connector holds from the balancer, as its charger confirmed it."""

    __tablename__ = "circuit_allocations"

    charge_point_id: str = Field(primary_key=True, max_length=48)
    connector_id: int = Field(primary_key=True)
    circuit_id: str = Field(max_length=64, index=True)
    transaction_id: int | None = Field(default=None)
    limit_a: float
    # The grid phases the allocator counts it on: the member's, or fewer once meter values
    # showed the car's (null: recorded before csms kept it, take the member's).
    phases: int | None = Field(default=None)
    reason: str = Field(max_length=255)
    # accepted: the charger took it; sent: no answer yet (counted at the higher of both).
    status: str = Field(max_length=16)
    lease_until: datetime | None = utc_column()
    changed_at: datetime | None = utc_column(nullable=False)


class CircuitAllocationChange(SQLModel, table=True):
    """The allocation history: one row per limit a connector was given."""

    __tablename__ = "circuit_allocation_history"
    __table_args__ = (Index("ix_circuit_allocation_history_circuit", "circuit_id", "id"),)

    id: int | None = big_id()
    circuit_id: str = Field(max_length=64)
    charge_point_id: str = Field(max_length=48)
    connector_id: int
    transaction_id: int | None = Field(default=None)
    limit_a: float
    previous_a: float | None = Field(default=None)
    phases: int | None = Field(default=None)
    reason: str = Field(max_length=255)
    at: datetime | None = utc_column(nullable=False)
