"""The circuits' events: the balancer's `circuit.allocation` and
`circuit.member.uncontrollable`, and `circuit.updated` for the operator's edits
(docs/events.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from csms.core.events import Event
from csms.events.envelope import EventType


def _event(
    charge_point_id: str, event_type: EventType, at: datetime, data: dict[str, Any]
) -> Event:
    return Event(
        id=uuid.uuid4(), charge_point_id=charge_point_id, type=event_type.value, time=at, data=data
    )


def circuit_allocation(
    charge_point_id: str,
    *,
    circuit_id: str,
    connector_id: int,
    limit_a: float,
    previous_a: float | None,
    phases: int,
    transaction_id: int | None,
    reason: str,
    at: datetime,
) -> Event:
    """A connector's new limit from the balancer, once its charger accepted it, and the
    number of grid phases the allocator counts it on (also when only that changed)."""
    return _event(
        charge_point_id,
        EventType.CIRCUIT_ALLOCATION,
        at,
        {
            "circuitId": circuit_id,
            "connectorId": connector_id,
            "limitA": limit_a,
            "previousA": previous_a,
            "phases": phases,
            "transactionId": transaction_id,
            "reason": reason,
        },
    )


def member_uncontrollable(
    charge_point_id: str,
    *,
    circuit_id: str,
    connector_id: int | None,
    reason: str,
    strategy: str,
    counted_a: float | None,
    at: datetime,
) -> Event:
    """A charger the balancer cannot control: it rejected every rung of the ladder, or it
    draws more than the limit it accepted."""
    return _event(
        charge_point_id,
        EventType.CIRCUIT_MEMBER_UNCONTROLLABLE,
        at,
        {
            "circuitId": circuit_id,
            "connectorId": connector_id,
            "reason": reason,
            "strategy": strategy,
            "countedA": counted_a,
        },
    )


def circuit_updated(circuit_id: str, circuit: dict[str, Any] | None, *, at: datetime) -> Event:
    """`circuit.updated`: a circuit was created or replaced (`circuit` as stored, in the
    API's camelCase) or deleted (`deleted` true, `circuit` null), under the circuit's id in
    the topic (`{prefix}/events/{circuitId}/circuit.updated`), shaped like `tariff.updated`
    (docs/events.md)."""
    data = {"circuitId": circuit_id, "deleted": circuit is None, "circuit": circuit}
    return _event(circuit_id, EventType.CIRCUIT_UPDATED, at, data)
