"""The cluster relay's QoS 2 link against the real Mosquitto: a window of packets waits on
one future, and a PUBREL sent again after its PUBCOMP (a relay that died before marking
the row delivered, or marks it with its next pass) delivers nothing twice."""

from __future__ import annotations

import uuid

import orjson
import pytest

from csms.events.mqtt_session import discard_session, open_session
from tests.cluster.nodes import MQTT_URL
from tests.support import MOSQUITTO_UP, subscribed

pytestmark = pytest.mark.skipif(not MOSQUITTO_UP, reason="needs Mosquitto on 127.0.0.1:1883")


def _packets(
    prefix: str, ids: range, *, dup: bool = False
) -> list[tuple[int, bytes, bytes, bool, bool]]:
    return [
        (i, f"{prefix}/events/t".encode(), orjson.dumps({"id": str(i), "type": "t"}), False, dup)
        for i in ids
    ]


async def test_a_window_is_acknowledged_and_a_second_pubrel_delivers_nothing() -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    client_id = f"{prefix}-relay-0-g1"
    window = range(1, 21)  # Mosquitto's max_inflight_messages
    async with subscribed(MQTT_URL, prefix) as events:
        link = await open_session(MQTT_URL, client_id=client_id, timeout=10)
        try:
            assert await link.publish(_packets(prefix, window)) == set(window)
            assert await link.release(list(window)) == set(window)
        finally:
            link.close()
        await events.until(len(window))
        # A node that got these PUBCOMPs and died before marking them delivered: the next
        # holder of the partition PUBRELs them again on the same session (MQTT 3.1.1
        # §4.3.3: the receiver answers every PUBREL with a PUBCOMP; the message went with
        # the first one).
        link = await open_session(MQTT_URL, client_id=client_id, timeout=10)
        try:
            assert await link.release(list(window)) == set(window)
            # Then a message of its own: once it arrived, anything released again would
            # have arrived before it (one session keeps its order, §4.6).
            last = range(21, 22)
            assert await link.publish(_packets(prefix, last)) == set(last)
            assert await link.release(list(last)) == set(last)
        finally:
            link.close()
        await events.until(len(window) + 1)
        await discard_session(MQTT_URL, client_id=client_id, timeout=10)
    assert sorted(int(e["id"]) for e in events.events) == list(range(1, 22))


async def test_a_lost_link_ends_its_windows_with_what_was_acknowledged() -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    client_id = f"{prefix}-relay-0-g1"
    link = await open_session(MQTT_URL, client_id=client_id, timeout=10)
    acked = await link.publish(_packets(prefix, range(1, 6)))
    pending = link.release([1, 2, 3])
    link.abort()
    assert acked == {1, 2, 3, 4, 5}
    assert await pending <= {1, 2, 3}
    # A link already lost acknowledges nothing and waits for nothing.
    assert await link.publish(_packets(prefix, range(6, 8))) == set()
    link = await open_session(MQTT_URL, client_id=client_id, timeout=10)
    try:
        assert await link.release([1, 2, 3, 4, 5]) == {1, 2, 3, 4, 5}
    finally:
        link.close()
    await discard_session(MQTT_URL, client_id=client_id, timeout=10)
