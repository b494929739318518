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


def partitions_to_take(
    leases: Sequence[LeaseView], *, me: str, partitions: int, live_nodes: int
) -> list[int]:
    """Free or expired partitions this node should take now, lowest first, up to its share."""
    held = sum(
        1
        for lease in leases
        if lease.holder == me and not lease.expired and partition_of_lease(lease.name) is not None
    )
    room = fair_share(partitions, live_nodes) - held
    if room <= 0:
        return []
    taken = {
        partition_of_lease(lease.name)
        for lease in leases
        if lease.holder is not None and not lease.expired
    }
    return [p for p in range(partitions) if p not in taken][:room]


def partitions_to_give(held: Sequence[int], *, partitions: int, live_nodes: int) -> list[int]:
    """Partitions over this node's share, highest first: released for others to take."""
    extra = len(held) - fair_share(partitions, live_nodes)
    return sorted(held, reverse=True)[: max(extra, 0)]


def packet_id(outbox_id: int) -> int:
    """The MQTT packet identifier of an outbox row (MQTT 3.1.1 §2.3.1: 1 to 65535).

    Derived from the row, not chosen by the publisher, so a node that adopts a partition
    re-sends an in-doubt PUBLISH with the id the broker saw. Unique among the rows a
    partition has in flight as long as they span fewer than 65535 ids (PACKET_WINDOW).
    """
    return outbox_id % 65535 + 1


PACKET_WINDOW = 65535
