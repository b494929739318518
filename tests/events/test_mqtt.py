"""The MQTT adapter against real brokers: Mosquitto on 127.0.0.1:1883 if present, embedded amqtt.

No mocks: events are published with our Publisher and read back with a plain aiomqtt
subscriber. Every test uses its own topic prefix, and waits for messages with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import aiomqtt
import pytest

from csms.errors import BrokerUnavailable, EmbeddedBrokerError, EventPublishError
from csms.events.envelope import EventType, decode_event, event_topic, is_retained, make_event
from csms.events.mqtt import (
    Backoff,
    Publisher,
    ensure_broker,
    is_listening,
    parse_mqtt_url,
    start_embedded_broker,
)
from csms.metrics import Metrics
from tests.support import MS, free_port

FAST = Backoff(initial=20 * MS, maximum=200 * MS)
MOSQUITTO_URL = "mqtt://127.0.0.1:1883"


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"csms-test-{uuid4().hex}"


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A real broker: the embedded amqtt one on a free port, or Mosquitto when it runs."""
    if request.param == "mosquitto":
        if not await is_listening("127.0.0.1", 1883):
            pytest.skip("no Mosquitto listening on 127.0.0.1:1883")
        yield MOSQUITTO_URL
        return
    broker = await start_embedded_broker("127.0.0.1", free_port())
    yield broker.url
    await broker.stop()


@contextlib.asynccontextmanager
async def subscribed(url: str, topic_filter: str) -> AsyncIterator[aiomqtt.Client]:
    """A plain aiomqtt client subscribed at QoS 1 (SUBACK received on entry)."""
    address = parse_mqtt_url(url)
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(topic_filter, qos=1)
        yield client


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(5_000 * MS):
        async for message in client.messages:
            return message
    raise AssertionError("the message stream ended")


async def clear_retained(url: str, topic: str) -> None:
    """Remove a retained message (a zero-length retained publish) so Mosquitto stays clean."""
    async with Publisher(url) as publisher:
        await publisher.publish(topic, b"", retain=True)


def _event(event_type: EventType, charge_point_id: str = "CP001") -> tuple[EventType, bytes]:
    event = make_event(
        event_id=uuid4(),
        charge_point_id=charge_point_id,
        event_type=event_type,
        time=datetime(2024, 1, 1, 10, 0, 5, tzinfo=UTC),
        data={"connectorId": 1, "ocppStatus": "Charging"},
        subject=f"{charge_point_id}/1",
    )
    return event_type, event.encode()


async def test_event_arrives_at_qos_1(broker_url: str, prefix: str) -> None:
    """A published event reaches a subscriber at QoS 1, unretained, byte for byte."""
    event_type, payload = _event(EventType.SESSION_UPDATED)
    topic = event_topic(prefix, "CP001", event_type)
    async with subscribed(broker_url, f"{prefix}/events/#") as subscriber:
        async with Publisher(broker_url) as publisher:
            await publisher.publish(topic, payload, retain=is_retained(event_type))
        message = await next_message(subscriber)
    assert message.topic.value == f"{prefix}/events/CP001/session.updated"
    assert message.payload == payload
    assert message.qos == 1
    assert message.retain is False
    assert decode_event(payload).type is EventType.SESSION_UPDATED


async def test_retained_event_reaches_a_late_subscriber(broker_url: str, prefix: str) -> None:
    """evse.status is retained: a subscriber that comes later still gets the latest one."""
    event_type, payload = _event(EventType.EVSE_STATUS)
    topic = event_topic(prefix, "CP001", event_type)
    assert is_retained(event_type)
    try:
        async with Publisher(broker_url) as publisher:
            await publisher.publish(topic, payload, retain=True)
        async with subscribed(broker_url, f"{prefix}/events/+/evse.status") as subscriber:
            message = await next_message(subscriber)
        assert message.topic.value == topic
        assert message.payload == payload
        assert message.retain is True
        assert message.qos == 1
    finally:
        await clear_retained(broker_url, topic)


async def test_unretained_event_is_not_replayed(broker_url: str, prefix: str) -> None:
    """A session event published before a subscriber exists is not delivered to it."""
    _, early = _event(EventType.SESSION_STARTED)
    _, later = _event(EventType.CDR_CREATED)
    async with Publisher(broker_url) as publisher:
        await publisher.publish(
            event_topic(prefix, "CP001", EventType.SESSION_STARTED), early, retain=False
        )
        async with subscribed(broker_url, f"{prefix}/events/#") as subscriber:
            await publisher.publish(
                event_topic(prefix, "CP001", EventType.CDR_CREATED), later, retain=False
            )
            message = await next_message(subscriber)
    assert message.payload == later


async def test_events_arrive_in_order(broker_url: str, prefix: str) -> None:
    """Sequential publishes for one charger arrive in the order they were acknowledged."""
    topic = event_topic(prefix, "CP001", EventType.METER_VALUES)
    payloads = [f"event-{n}".encode() for n in range(20)]
    async with subscribed(broker_url, topic) as subscriber:
        async with Publisher(broker_url) as publisher:
            for payload in payloads:
                await publisher.publish(topic, payload, retain=False)
        received = [(await next_message(subscriber)).payload for _ in payloads]
    assert received == payloads


async def test_pipelined_publishes_arrive_in_order(broker_url: str, prefix: str) -> None:
    """publish_nowait sends at once, many in flight, in call order; None when not connected."""
    topic = event_topic(prefix, "CP001", EventType.METER_VALUES)
    payloads = [f"event-{n}".encode() for n in range(200)]
    publisher = Publisher(broker_url)
    assert publisher.publish_nowait(topic, b"x", retain=False) is None
    async with subscribed(broker_url, topic) as subscriber:
        await publisher.connect()
        sent = [publisher.publish_nowait(topic, payload, retain=False) for payload in payloads]
        async with asyncio.timeout(5_000 * MS):
            await asyncio.gather(*(future for future in sent if future is not None))
        assert all(future is not None for future in sent)
        received = [(await next_message(subscriber)).payload for _ in payloads]
    await publisher.close()
    assert received == payloads


async def test_ensure_broker_leaves_a_listening_broker_alone(broker_url: str) -> None:
    """Something listens at mqtt.url: no embedded broker is started."""
    assert await ensure_broker(broker_url, embedded=True) is None


async def test_ensure_broker_starts_the_embedded_broker(prefix: str) -> None:
    """Nothing listens and mqtt.embedded is true: amqtt serves there until stopped."""
    url = f"mqtt://127.0.0.1:{free_port()}"
    broker = await ensure_broker(url, embedded=True)
    assert broker is not None
    try:
        assert broker.url == url
        assert await is_listening("127.0.0.1", broker.port)
        topic = event_topic(prefix, "CP001", EventType.CHARGEPOINT_BOOTED)
        async with subscribed(url, topic) as subscriber:
            async with Publisher(url) as publisher:
                await publisher.publish(topic, b"{}", retain=True)
            assert (await next_message(subscriber)).payload == b"{}"
    finally:
        await broker.stop()
    assert not await is_listening("127.0.0.1", broker.port)


async def test_ensure_broker_without_embedded_starts_nothing() -> None:
    """Nothing listens and mqtt.embedded is false: nothing is started."""
    port = free_port()
    assert await ensure_broker(f"mqtt://127.0.0.1:{port}", embedded=False) is None
    assert not await is_listening("127.0.0.1", port)


async def test_embedded_broker_on_a_taken_port_fails() -> None:
    """A port in use gives EmbeddedBrokerError."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(EmbeddedBrokerError):
            await start_embedded_broker("127.0.0.1", taken.getsockname()[1])


async def test_connect_gives_up_after_the_given_attempts() -> None:
    """With nothing listening, connect(attempts=3) raises BrokerUnavailable."""
    publisher = Publisher(f"mqtt://127.0.0.1:{free_port()}", backoff=FAST)
    with pytest.raises(BrokerUnavailable):
        await publisher.connect(attempts=3)
    assert not publisher.connected


async def test_publish_waits_out_a_broker_outage(prefix: str) -> None:
    """A publish during an outage completes once the broker is back (backoff reconnect)."""
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    topic = event_topic(prefix, "CP001", EventType.CHARGEPOINT_NETWORK_STATUS)
    broker = await start_embedded_broker("127.0.0.1", port)
    async with Publisher(url, backoff=FAST) as publisher:
        await publisher.publish(topic, b"before", retain=True)
        await broker.stop()
        pending = asyncio.create_task(publisher.publish(topic, b"after", retain=True))
        broker = await start_embedded_broker("127.0.0.1", port)
        try:
            async with asyncio.timeout(5_000 * MS):
                await pending
            async with subscribed(url, topic) as subscriber:
                message = await next_message(subscriber)
            assert message.payload == b"after"
            assert message.retain is True
        finally:
            await broker.stop()


async def test_publisher_reconnects_after_a_broker_restart(prefix: str) -> None:
    """After the broker restarts, the next publish reconnects and is delivered."""
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    topic = event_topic(prefix, "CP001", EventType.EVSE_STATUS)
    broker = await start_embedded_broker("127.0.0.1", port)
    async with Publisher(url, backoff=FAST) as publisher:
        await publisher.publish(topic, b"one", retain=True)
        await broker.stop()
        broker = await start_embedded_broker("127.0.0.1", port)
        try:
            async with subscribed(url, topic) as subscriber:
                await publisher.publish(topic, b"two", retain=True)
                message = await next_message(subscriber)
            assert message.payload == b"two"
        finally:
            await broker.stop()


@contextlib.asynccontextmanager
async def broker_without_pubacks() -> AsyncIterator[int]:
    """A TCP server that accepts MQTT connections (CONNACK) but never acknowledges a PUBLISH."""

    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted (MQTT 3.1.1 §3.2)
        await writer.drain()
        while await reader.read(1024):  # PUBLISH, PINGREQ, DISCONNECT: all ignored
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
    # The publisher hangs up abruptly; close our ends before the test's loop goes away.
    for writer in writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_no_puback_is_an_error() -> None:
    """publish() returns only on PUBACK: without one it raises EventPublishError."""
    async with broker_without_pubacks() as port:
        publisher = Publisher(f"mqtt://127.0.0.1:{port}", timeout=500 * MS)
        await publisher.connect(attempts=1)
        with pytest.raises(EventPublishError, match="not acknowledged"):
            await publisher.publish("csms/events/CP001/cdr.created", b"{}", retain=False)
        assert not publisher.connected
        await publisher.close()


async def test_closed_publisher_refuses() -> None:
    """After close(), publishing raises BrokerUnavailable."""
    publisher = Publisher(MOSQUITTO_URL)
    await publisher.close()
    with pytest.raises(BrokerUnavailable, match="closed"):
        await publisher.publish("csms/x", b"", retain=False)


@pytest.mark.parametrize(
    ("url", "host", "port", "username"),
    [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, None),
        ("mqtt://broker.local", "broker.local", 1883, None),
        ("mqtt://csms:s%40cret@[::1]:1884", "::1", 1884, "csms"),
    ],
)
def test_parse_mqtt_url(url: str, host: str, port: int, username: str | None) -> None:
    """mqtt://[user[:password]@]host[:port]."""
    address = parse_mqtt_url(url)
    assert (address.host, address.port, address.username) == (host, port, username)


def test_parse_mqtt_url_password_is_decoded_and_hidden() -> None:
    """The password is percent-decoded and kept out of repr."""
    address = parse_mqtt_url("mqtt://csms:s%40cret@broker:1883")
    assert address.password == "s@cret"
    assert "s@cret" not in repr(address)


@pytest.mark.parametrize(
    "url", ["mqtts://broker:8883", "tcp://broker", "mqtt://", "mqtt://broker/x", "mqtt://b:99999"]
)
def test_parse_mqtt_url_refuses(url: str) -> None:
    """Other schemes, no host, a path, or a bad port are refused."""
    with pytest.raises(ValueError, match=r"mqtt url|port"):
        parse_mqtt_url(url)


def test_backoff_grows_with_jitter() -> None:
    """Delays lie in [d/2, d] with d doubling up to the maximum."""
    backoff = Backoff(initial=0.5, maximum=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = {backoff.delay(attempt, rng=rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


async def test_pubacks_back_to_back_and_split_across_reads() -> None:
    """PUBACKs that arrive together are taken in one pass, one cut in two between reads
    is taken when its second half comes, a PINGRESP among them changes nothing; each
    PUBACK completes its own publish and is timed once (csms_mqtt_publish_seconds)."""
    count = 6
    ids: list[bytes] = []
    published = asyncio.Event()
    second_half = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted (MQTT 3.1.1 §3.2)
        await writer.drain()
        while len(ids) < count:
            # PUBLISH at QoS 1 (§3.3), short enough for a one-byte remaining length.
            head = await reader.readexactly(2)
            body = await reader.readexactly(head[1])
            topic_length = int.from_bytes(body[:2], "big")
            ids.append(body[2 + topic_length : 4 + topic_length])
        published.set()
        acks = [b"\x40\x02" + packet_id for packet_id in ids]  # PUBACK (§3.4)
        # Three PUBACKs, a PINGRESP (§3.13), one more and the first half of the fifth.
        writer.write(b"".join(acks[:3]) + b"\xd0\x00" + acks[3] + acks[4][:2])
        await writer.drain()
        await second_half.wait()
        writer.write(acks[4][2:] + b"".join(acks[5:]))
        await writer.drain()
        await reader.read(1024)  # DISCONNECT, or the end
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        served.set()

    served = asyncio.Event()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        metrics = Metrics()
        publisher = Publisher(f"mqtt://127.0.0.1:{port}", metrics=metrics)
        await publisher.connect(attempts=1)
        sent = [publisher.publish_nowait(f"t/{n}", b"{}", retain=False) for n in range(count)]
        futures = [future for future in sent if future is not None]
        assert len(futures) == count
        await published.wait()
        await asyncio.wait_for(asyncio.gather(*futures[:4]), timeout=5)
        assert not futures[4].done()
        second_half.set()
        await asyncio.wait_for(asyncio.gather(*futures), timeout=5)
        timed = metrics.registry.get_sample_value("csms_mqtt_publish_seconds_count")
        assert timed == count
        await publisher.close()
        # The server's end is closed before the test's loop goes away.
        await asyncio.wait_for(served.wait(), timeout=5)
