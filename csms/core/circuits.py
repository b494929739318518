"""Circuit trees as operators define them, turned into the allocator's snapshot: checks,
phase rotation, the safe share, and one demand per session (docs/load-balancing.md).

Pure: plain values in, plain values out. Amps from the API become deci-amps here, rounded
down for limits (never over) and up for base load (never under-counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from csms.core.allocator import PHASES, ConnectorKey, Demand, Node


class Rotation(StrEnum):
    """Which grid phases feed the charger's L1, L2, L3 (SAP `phaseToGrid`)."""

    RST = "RST"  # L1->L1, L2->L2, L3->L3
    STR = "STR"  # charger L1 on grid L2, L2 on L3, L3 on L1
    TRS = "TRS"  # charger L1 on grid L3, L2 on L1, L3 on L2


_ROTATIONS = {Rotation.RST: (0, 1, 2), Rotation.STR: (1, 2, 0), Rotation.TRS: (2, 0, 1)}


def grid_phases(rotation: Rotation, phases: int) -> tuple[int, ...]:
    """The grid phases a car drawing on the charger's first `phases` phases loads."""
    return tuple(sorted(_ROTATIONS[rotation][:phases]))


@dataclass(frozen=True)
class CircuitSpec:
    circuit_id: str
    parent_id: str | None
    limits_a: tuple[float, float, float]
    base_load_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    safety_margin_a: float = 0.5


@dataclass(frozen=True)
class MemberSpec:
    """A member: one connector, or (connector_id 0) every connector of a charger on one feed
    limited to `max_a` per phase."""

    charge_point_id: str
    connector_id: int
    circuit_id: str
    rotation: Rotation = Rotation.RST
    phases: int = 3
    priority: int = 0
    min_a: float = 6.0
    max_a: float = 32.0


def deci_down(amps: float) -> int:
    return math.floor(amps * 10 + 1e-9)


def deci_up(amps: float) -> int:
    return math.ceil(amps * 10 - 1e-9)


def tree_problem(circuits: Sequence[CircuitSpec]) -> str | None:
    """Why the circuits are not a forest (unknown parent, cycle), or None."""
    by_id = {c.circuit_id: c for c in circuits}
    for circuit in circuits:
        seen = {circuit.circuit_id}
        parent = circuit.parent_id
        while parent is not None:
            if parent not in by_id:
                return f"circuit {circuit.circuit_id}: parent {parent} does not exist"
            if parent in seen:
                return f"circuit {circuit.circuit_id} would be its own ancestor"
            seen.add(parent)
            parent = by_id[parent].parent_id
    return None


def root_of(circuits: Mapping[str, CircuitSpec], circuit_id: str) -> str:
    """The root circuit above `circuit_id` (itself for a root); the forest must be valid."""
    current = circuits[circuit_id]
    while current.parent_id is not None:
        current = circuits[current.parent_id]
    return current.circuit_id


def feed_node_id(member: MemberSpec) -> str:
    """The virtual node of a whole-charger member: its feed, limited to `max_a`."""
    return f"{member.circuit_id}/{member.charge_point_id}"


def nodes_of(circuits: Sequence[CircuitSpec], members: Sequence[MemberSpec]) -> list[Node]:
    """The allocator's nodes: each circuit less its safety margin, and one feed node per
    whole-charger member."""
    nodes = [
        Node(
            c.circuit_id,
            c.parent_id,
            _three(deci_down(max(limit - c.safety_margin_a, 0.0)) for limit in c.limits_a),
            _three(deci_up(load) for load in c.base_load_a),
        )
        for c in circuits
    ]
    for member in members:
        if member.connector_id == 0:
            fed = set(grid_phases(member.rotation, member.phases))
            limit = _three(deci_down(member.max_a) if p in fed else 0 for p in range(PHASES))
            nodes.append(Node(feed_node_id(member), member.circuit_id, limit))
    return nodes


def _three(values: Iterable[int]) -> tuple[int, int, int]:
    a, b, c = tuple(values)
    return (a, b, c)


def member_for(
    members: Mapping[tuple[str, int], MemberSpec], key: ConnectorKey
) -> MemberSpec | None:
    """The member a connector belongs to: as itself, or through its whole charger."""
    return members.get(key) or members.get((key[0], 0))


@dataclass(frozen=True)
class SessionView:
    """What the balancer knows about a session on a member connector."""

    key: ConnectorKey
    order: int
    # The car's phases, once meter values showed them (None: assume the member's).
    phases_used: int | None = None
    # Counted at this draw, not controlled (offline, uncontrollable, violating), deci-amps.
    fixed_da: int | None = None
    # The car is full or draws nothing (csms.core.balancing.rotation).
    idle: bool = False


def demands_of(
    sessions: Sequence[SessionView],
    members: Mapping[tuple[str, int], MemberSpec],
    *,
    integer_amps: Mapping[str, bool] | None = None,
) -> list[Demand]:
    """One demand per session on a member connector; others are not the balancer's."""
    found = []
    for view in sessions:
        member = member_for(members, view.key)
        if member is None:
            continue
        phases = min(view.phases_used or member.phases, member.phases)
        node = feed_node_id(member) if member.connector_id == 0 else member.circuit_id
        whole = (integer_amps or {}).get(view.key[0], False)
        found.append(
            Demand(
                key=view.key,
                node_id=node,
                phases=grid_phases(member.rotation, phases),
                min_da=deci_up(member.min_a),
                max_da=deci_down(member.max_a),
                priority=member.priority,
                order=view.order,
                fixed_da=view.fixed_da,
                step_da=10 if whole else 1,
                idle=view.idle,
            )
        )
    return found


def safe_shares(
    circuits: Sequence[CircuitSpec],
    members: Sequence[MemberSpec],
    *,
    connectors: Mapping[str, int],
) -> dict[tuple[str, int], int]:
    """The safe share per member (deci-amps per phase): what each of its connectors may draw
    if every member connector charges at once with nobody watching.

    Each node's headroom (limit less margin and base load) is split evenly over the
    connectors below it; a member gets the smallest split on its way to the root, capped at
    its maximum (and its feed shared by its connectors), or 0 below its minimum.
    """
    by_id = {c.circuit_id: c for c in circuits}
    slots: dict[str, int] = dict.fromkeys(by_id, 0)
    count = {
        (m.charge_point_id, m.connector_id): (
            max(connectors.get(m.charge_point_id, 1), 1) if m.connector_id == 0 else 1
        )
        for m in members
    }
    for member in members:
        node: str | None = member.circuit_id
        while node is not None:
            slots[node] += count[member.charge_point_id, member.connector_id]
            node = by_id[node].parent_id
    shares = {}
    for member in members:
        key = (member.charge_point_id, member.connector_id)
        share = deci_down(member.max_a) // count[key]
        node = member.circuit_id
        while node is not None:
            circuit = by_id[node]
            for p in grid_phases(member.rotation, member.phases):
                room = deci_down(circuit.limits_a[p] - circuit.safety_margin_a) - deci_up(
                    circuit.base_load_a[p]
                )
                share = min(share, max(room, 0) // max(slots[node], 1))
            node = circuit.parent_id
        shares[key] = share if share >= deci_up(member.min_a) else 0
    return shares
