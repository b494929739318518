"""Scale-out decisions, pure: which slot an event is in, which partitions a node holds.

docs/deployment.md explains the model: events are spread over SLOTS by their charger, a
partition is the set of slots equal modulo the partition count, and each partition has
one publishing node at a time (a lease).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

# Fixed for ever: an event's slot is written with it. The partition count may change
# between cluster restarts; the slot does not.
SLOTS = 4096
LEADER = "leader"
PARTITION_PREFIX = "relay:"


def slot_of(charge_point_id: str) -> int:
    """The slot of a charger's events: every event of one charger is in one slot, so one
    partition, so one publisher at a time keeps them in order."""
    return zlib.crc32(charge_point_id.encode()) % SLOTS


def partition_lease(partition: int) -> str:
    """The lease name of an outbox partition."""
    return f"{PARTITION_PREFIX}{partition}"


def partition_of_lease(name: str) -> int | None:
    """The partition a lease name stands for, or None for another lease."""
    if not name.startswith(PARTITION_PREFIX):
        return None
    return int(name[len(PARTITION_PREFIX) :])


def fair_share(partitions: int, live_nodes: int) -> int:
    """How many partitions one node should hold: the ceiling of an even split."""
    return math.ceil(partitions / max(live_nodes, 1))


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as the balancing decision sees it."""

    name: str
    holder: str | None
    expired: bool


def holdings(leases: Sequence[LeaseView], live: Sequence[str]) -> dict[str, list[int]]:
    """The partitions each live node holds (every live node listed, holding none or more)."""
    held: dict[str, list[int]] = {node: [] for node in live}
    for lease in leases:
        partition = partition_of_lease(lease.name)
        if partition is not None and not lease.expired and lease.holder in held:
            held[lease.holder].append(partition)
    return held


def partitions_to_take(
    leases: Sequence[LeaseView], *, me: str, partitions: int, live: Sequence[str]
) -> list[int]:
    """Free or expired partitions this node should take now, lowest first.

    A node takes while under the ceiling of an even split and no other live node holds
    fewer than it does: the least loaded node fills up first, so a partition one node
    gives away goes to the node that needs it, not back.
    """
    held = holdings(leases, [*live, me] if me not in live else live)
    mine = len(held[me])
    others = [len(p) for node, p in held.items() if node != me]
    if others and min(others) < mine:
        return []
    room = fair_share(partitions, len(held)) - mine
    if room <= 0:
        return []
    taken = {
        partition_of_lease(lease.name)
        for lease in leases
        if lease.holder is not None and not lease.expired
    }
    return [p for p in range(partitions) if p not in taken][:room]


def partitions_to_give(
    leases: Sequence[LeaseView], *, me: str, partitions: int, live: Sequence[str]
) -> list[int]:
    """Partitions this node should release, highest first, for others to take: the excess
    over the ceiling of an even split, or one when another live node holds two fewer
    (4 partitions on 3 nodes settle at 2, 1, 1 rather than 2, 2, 0)."""
    held = holdings(leases, [*live, me] if me not in live else live)
    mine = sorted(held[me], reverse=True)
    extra = len(mine) - fair_share(partitions, len(held))
    others = [len(p) for node, p in held.items() if node != me]
    if extra <= 0 and others and min(others) + 1 < len(mine):
        extra = 1
    return mine[: max(extra, 0)]


def packet_id(outbox_id: int) -> int:
    """The MQTT packet identifier of an outbox row (MQTT 3.1.1 §2.3.1: 1 to 65535).

    Derived from the row, not chosen by the publisher, so a node that adopts a partition
    re-sends an in-doubt PUBLISH with the id the broker saw. Unique among the rows a
    partition has in flight as long as they span fewer than 65535 ids (PACKET_WINDOW).
    """
    return outbox_id % 65535 + 1


PACKET_WINDOW = 65535

# outbox_events.relay_state: 0 while no PUBREC is committed; RELEASED + g once the PUBREC
# of the event's PUBLISH on the broker session of lease generation g is (so only a PUBREL
# on that session may follow). RELEASED alone (g = 0) is the one session per partition of
# before generations had their own.
RELEASED = 2


def released_state(generation: int) -> int:
    """The relay state of an event whose PUBREC came on generation `generation`'s session."""
    return RELEASED + generation


def session_of(relay_state: int) -> int | None:
    """The generation whose broker session holds the event for its PUBREL, or None when
    no PUBREC was committed (any holder may PUBLISH it afresh on its own session)."""
    return None if relay_state < RELEASED else relay_state - RELEASED


def session_client_id(prefix: str, partition: int, generation: int) -> str:
    """The MQTT client id of a partition's broker session for one lease generation.

    Each generation publishes on a session of its own, so a node that lost the lease
    (frozen past it, say) can never take the adopter's session over, nor fill it with
    unreleased messages that would count against the broker's in-flight limit.
    """
    base = f"{prefix}-relay-{partition}"
    return base if generation == 0 else f"{base}-g{generation}"
