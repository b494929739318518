"""The circuit allocator: a snapshot of a circuit tree and its sessions in, a current limit
per connector out (docs/load-balancing.md, "The allocator").

Pure and synchronous. Currents are whole deci-amps (0.1 A, the schema's step for limits) so
that sums are exact and rounding is always down. Each node of the tree has a limit per grid
phase; each session draws on some grid phases of its node and of every ancestor.

1. Reserved load (base load, metered other load, sessions counted at a fixed draw) comes
   off every node it passes through.
2. Minimum first, in priority order (then rotation order, `order`): a session gets its
   minimum on every phase of every ancestor, or 0 (queued), never something in between.
   Idle sessions (the car is full or draws nothing) come after every other one and are
   held at their minimum at most, so a full car never keeps a slot a hungry one needs, yet
   can resume when there is room (docs/load-balancing.md, "Idle cars and rotation").
3. The rest is shared max-min fair, one priority class after the other: every session in
   the class rises at the same level until its cap or a saturated node phase stops it
   (progressive filling, exact, one round per event instead of fixed slices).
4. `violations` is the invariant check run before anything is sent.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

PHASES = 3
ConnectorKey = tuple[str, int]


class Reason(StrEnum):
    """Why a connector got its limit (`circuit.allocation` `reason`)."""

    CAP = "cap"  # the member's or car's maximum
    CIRCUIT = "circuit"  # a node phase is full: its fair share
    QUEUED = "queued"  # its minimum does not fit: 0 until it does
    FIXED = "fixed"  # not controlled: counted at a fixed draw
    IDLE = "idle"  # the car draws nothing: held at its minimum so that it can resume


@dataclass(frozen=True)
class Node:
    """A circuit: per-phase limit and reserved load, in deci-amps (margin already off)."""

    node_id: str
    parent_id: str | None
    limit: tuple[int, int, int]
    reserved: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class Demand:
    """A session (or a connector to keep reserved) on a node's grid `phases` (0, 1, 2)."""

    key: ConnectorKey
    node_id: str
    phases: tuple[int, ...]
    min_da: int
    max_da: int
    priority: int = 0
    order: int = 0
    # Counted at this draw and not controlled: offline, uncontrollable, violating.
    fixed_da: int | None = None
    # The member's step: 10 for chargers that take whole amps only.
    step_da: int = 1
    # The car is full or draws nothing: its minimum at most, after every other session.
    idle: bool = False


class Grant(NamedTuple):
    """The limit of one connector and why (a tuple: a pass makes one per connector)."""

    limit_da: int
    reason: Reason
    node_id: str | None = None
    phase: int | None = None


@dataclass(frozen=True)
class Violation:
    """A node phase over its limit."""

    node_id: str
    phase: int
    load_da: int
    limit_da: int


class TreeError(ValueError):
    """A snapshot that is not a tree (unknown parent, cycle, unknown node)."""


@dataclass
class _Tree:
    index: dict[str, int]
    nodes: list[Node]
    paths: dict[str, list[int]] = field(default_factory=dict)
    cache: dict[tuple[str, tuple[int, ...]], list[int]] = field(default_factory=dict)

    @classmethod
    def build(cls, nodes: Sequence[Node]) -> _Tree:
        tree = cls({node.node_id: i for i, node in enumerate(nodes)}, list(nodes))
        for node in nodes:
            tree.paths[node.node_id] = tree._path(node)
        return tree

    def _path(self, node: Node) -> list[int]:
        path, seen = [], set()
        current: Node | None = node
        while current is not None:
            if current.node_id in seen:
                raise TreeError(f"circuit {current.node_id} is its own ancestor")
            seen.add(current.node_id)
            path.append(self.index[current.node_id])
            parent = current.parent_id
            if parent is not None and parent not in self.index:
                raise TreeError(f"circuit {current.node_id} has an unknown parent {parent}")
            current = None if parent is None else self.nodes[self.index[parent]]
        return path

    def constraints(self, demand: Demand) -> list[int]:
        cached = self.cache.get((demand.node_id, demand.phases))
        if cached is not None:
            return cached
        if demand.node_id not in self.paths:
            raise TreeError(f"unknown circuit {demand.node_id}")
        found = [i * PHASES + p for i in self.paths[demand.node_id] for p in demand.phases]
        self.cache[demand.node_id, demand.phases] = found
        return found


def allocate(nodes: Sequence[Node], demands: Sequence[Demand]) -> dict[ConnectorKey, Grant]:
    """One allocation pass: a limit (deci-amps, 0 or at least the minimum) per demand.

    Raises:
        TreeError: the nodes do not form a tree, or a demand names an unknown node.
    """
    tree = _Tree.build(nodes)
    # An idle car is capped at its minimum: enough to resume, nothing the others could use.
    demands = [replace(d, max_da=min(d.max_da, d.min_da)) if d.idle else d for d in demands]
    headroom = [0] * (len(nodes) * PHASES)
    for i, node in enumerate(nodes):
        for p in range(PHASES):
            headroom[i * PHASES + p] = node.limit[p] - node.reserved[p]
    # Sessions are numbered in rank order: priority, then plug-in order, then key.
    ranked = sorted(demands, key=lambda d: (-d.priority, d.order, d.key))
    paths = [tree.constraints(d) for d in ranked]
    raw: list[tuple[int, Reason, int | None]] = [(0, Reason.QUEUED, None)] * len(ranked)
    for i, demand in enumerate(ranked):
        if demand.fixed_da is not None:
            for c in paths[i]:
                headroom[c] -= demand.fixed_da
            raw[i] = (demand.fixed_da, Reason.FIXED, None)
    granted: list[int] = []
    # Minimums go to the hungry sessions first, in rank order, then to the idle ones.
    for i in sorted(range(len(ranked)), key=lambda i: ranked[i].idle):
        demand = ranked[i]
        if demand.fixed_da is not None:
            continue
        need = demand.min_da
        blocked = next((c for c in paths[i] if headroom[c] < need), None)
        if blocked is None and demand.max_da >= need:
            for c in paths[i]:
                headroom[c] -= need
            granted.append(i)
        else:
            raw[i] = (0, Reason.QUEUED, paths[i][0] if blocked is None else blocked)
    granted.sort()  # back to rank order: the priority classes are runs of it
    start = 0
    while start < len(granted):
        # One priority class after the other: granted is in rank order.
        end = start
        priority = ranked[granted[start]].priority
        while end < len(granted) and ranked[granted[end]].priority == priority:
            end += 1
        _fill(granted[start:end], ranked, paths, headroom, raw)
        start = end
    return {d.key: _grant(raw[i], d, nodes) for i, d in enumerate(ranked)}


def _grant(raw: tuple[int, Reason, int | None], demand: Demand, nodes: Sequence[Node]) -> Grant:
    """The Grant, rounded down to the member's step: below its minimum that is 0, never in
    between."""
    value, reason, where = raw
    if demand.idle and reason is Reason.CAP:
        reason = Reason.IDLE
    if reason is not Reason.FIXED and demand.step_da > 1 and value:
        value -= value % demand.step_da
        if value < demand.min_da:
            value, reason = 0, Reason.QUEUED
    if where is None:
        return Grant(value, reason)
    return Grant(value, reason, nodes[where // PHASES].node_id, where % PHASES)


def _fill(
    members: list[int],
    ranked: Sequence[Demand],
    paths: Sequence[list[int]],
    headroom: list[int],
    result: list[tuple[int, Reason, int | None]],
) -> None:
    """Progressive filling of one priority class from its minimums (max-min fair).

    The level rises from one event to the next: a session joins when the level reaches its
    minimum, stops at its cap, or stops when a node phase on its path has less headroom left
    than one step per rising session. `headroom` is consumed and `result` written in place.
    """
    # Constraints that cannot bind (room for every session's cap) are left out of the
    # rounds, and charged once at the end.
    want: dict[int, int] = {}
    for i in members:
        extra = ranked[i].max_da - ranked[i].min_da
        for c in paths[i]:
            want[c] = want.get(c, 0) + extra
    binding = [c for c, total in want.items() if headroom[c] < total]
    bound = set(binding)
    live = {i: [c for c in paths[i] if c in bound] for i in members}
    on: dict[int, list[int]] = {c: [] for c in binding}
    for i in members:
        for c in live[i]:
            on[c].append(i)
    waiting = sorted(members, key=lambda i: ranked[i].min_da)
    rising: set[int] = set()
    count = dict.fromkeys(binding, 0)
    dead: set[int] = set()
    caps: list[tuple[int, int]] = []
    level, next_wait = (ranked[waiting[0]].min_da if waiting else 0), 0

    def stop(i: int, reason: Reason, where: int | None) -> None:
        rising.discard(i)
        for c in live[i]:
            count[c] -= 1
        result[i] = (level, reason, where)

    while True:
        while next_wait < len(waiting) and ranked[waiting[next_wait]].min_da <= level:
            i = waiting[next_wait]
            next_wait += 1
            blocked = next((c for c in live[i] if c in dead), None)
            if blocked is not None:
                result[i] = (level, Reason.CIRCUIT, blocked)
                continue
            rising.add(i)
            for c in live[i]:
                count[c] += 1
            heapq.heappush(caps, (ranked[i].max_da, i))
        while caps and caps[0][0] <= level:
            _, i = heapq.heappop(caps)
            if i in rising:
                stop(i, Reason.CAP, None)
        full = [c for c in binding if count[c] and headroom[c] < count[c]]
        for c in full:
            dead.add(c)
            for i in on[c]:
                if i in rising:
                    stop(i, Reason.CIRCUIT, c)
        if full:
            binding = [c for c in binding if c not in dead]
        if not rising:
            if next_wait >= len(waiting):
                break
            level = ranked[waiting[next_wait]].min_da
            continue
        target = caps[0][0]
        for c in binding:
            n = count[c]
            if n and level + headroom[c] // n < target:
                target = level + headroom[c] // n
        if next_wait < len(waiting):
            target = min(target, ranked[waiting[next_wait]].min_da)
        step = target - level
        for c in binding:
            if count[c]:
                headroom[c] -= step * count[c]
        level = target
    for i in members:
        rise = result[i][0] - ranked[i].min_da
        for c in paths[i]:
            if c not in bound:
                headroom[c] -= rise


def violations(
    nodes: Sequence[Node], demands: Sequence[Demand], grants: Mapping[ConnectorKey, Grant]
) -> list[Violation]:
    """Every node phase where reserved load plus granted limits exceed the limit, and a
    controlled session's limit is part of it.

    Run before any limit is sent: a non-empty answer means a bug or a bad snapshot, and the
    balancer keeps the limits it has (docs/load-balancing.md, "Safety"). A node phase that
    fixed draws alone overload (a charger that does not keep its limit) is no violation:
    the allocator gives nobody anything there, and nothing it sends can change it.
    """
    tree = _Tree.build(nodes)
    load = [0] * (len(nodes) * PHASES)
    controlled = [0] * (len(nodes) * PHASES)
    for i, node in enumerate(nodes):
        for p in range(PHASES):
            load[i * PHASES + p] = node.reserved[p]
    for demand in demands:
        grant = grants.get(demand.key)
        if demand.fixed_da is not None:
            value, mine = demand.fixed_da, 0
        else:
            value = mine = grant.limit_da if grant is not None else 0
        for c in tree.constraints(demand):
            load[c] += value
            controlled[c] += mine
    found = []
    for i, node in enumerate(nodes):
        for p in range(PHASES):
            c = i * PHASES + p
            if load[c] > node.limit[p] and controlled[c] > 0:
                found.append(Violation(node.node_id, p, load[c], node.limit[p]))
    return found
