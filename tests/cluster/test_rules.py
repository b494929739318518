"""The pure scale-out rules: slots, partition balance, packet ids."""

from __future__ import annotations

import pytest

from csms.core.cluster import (
    SLOTS,
    LeaseView,
    packet_id,
    partition_lease,
    partitions_to_give,
    partitions_to_take,
    released_state,
    session_client_id,
    session_of,
    slot_of,
)


def _leases(
    holders: dict[int, str | None], expired: frozenset[int] = frozenset()
) -> list[LeaseView]:
    return [
        LeaseView(name=partition_lease(p), holder=h, expired=p in expired)
        for p, h in holders.items()
    ]


def test_a_chargers_events_share_one_slot() -> None:
    """The slot depends on the charger id only, and stays within SLOTS."""
    assert slot_of("CP-1") == slot_of("CP-1")
    assert all(0 <= slot_of(f"CP-{i}") < SLOTS for i in range(1000))
    assert len({slot_of(f"CP-{i}") for i in range(1000)}) > 500


@pytest.mark.parametrize(
    ("holders", "me", "live", "take"),
    [
        ({}, "a", ["a"], [0, 1, 2, 3]),  # alone: everything
        ({0: "a", 1: "a", 2: "b", 3: "b"}, "c", ["a", "b", "c"], []),  # nothing free
        ({0: "a", 1: None, 2: "b", 3: "b"}, "c", ["a", "b", "c"], [1]),  # a gave one away
        ({0: "a", 1: None, 2: "b", 3: "b"}, "a", ["a", "b", "c"], []),  # not back to a
        ({0: "a", 1: "dead", 2: "b", 3: "dead"}, "a", ["a", "b"], [1]),  # adopt, one each
    ],
)
def test_partitions_to_take(
    holders: dict[int, str | None], me: str, live: list[str], take: list[int]
) -> None:
    """The least loaded node takes free partitions up to the even split."""
    leases = _leases(holders, expired=frozenset(p for p, h in holders.items() if h == "dead"))
    assert partitions_to_take(leases, me=me, partitions=4, live=live) == take


@pytest.mark.parametrize(
    ("holders", "me", "live", "give"),
    [
        ({0: "a", 1: "a", 2: "a", 3: "a"}, "a", ["a", "b"], [3, 2]),  # over the ceiling
        ({0: "a", 1: "a", 2: "b", 3: "b"}, "a", ["a", "b", "c"], [1]),  # c has none
        ({0: "a", 1: "a", 2: "b", 3: "c"}, "a", ["a", "b", "c"], []),  # 2, 1, 1 is settled
    ],
)
def test_partitions_to_give(
    holders: dict[int, str | None], me: str, live: list[str], give: list[int]
) -> None:
    """A node over its share, or two ahead of another, lets partitions go."""
    assert partitions_to_give(_leases(holders), me=me, partitions=4, live=live) == give


def test_packet_ids_are_valid_and_unique_within_the_window() -> None:
    """MQTT 3.1.1 §2.3.1: 1 to 65535, and distinct for 65535 consecutive rows."""
    ids = [packet_id(row) for row in range(10, 10 + 65535)]
    assert min(ids) == 1
    assert max(ids) == 65535
    assert len(set(ids)) == 65535


def test_a_committed_pubrec_names_the_session_that_holds_the_event() -> None:
    assert session_of(0) is None
    assert session_of(released_state(7)) == 7
    # relay_state 2 of before generations had sessions of their own: the shared session.
    assert session_of(2) == 0
    assert session_client_id("csms", 3, 0) == "csms-relay-3"
    assert session_client_id("csms", 3, 7) == "csms-relay-3-g7"
    assert session_client_id("csms", 3, 7) != session_client_id("csms", 3, 8)
