"""Business events as facts: what happened, to which charger, and when. No I/O, no format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Event:
    """One event to publish; `id` is chosen once, so every redelivery carries the same id."""

    id: UUID
    charge_point_id: str
    type: str
    time: datetime
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
