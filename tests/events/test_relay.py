"""The outbox relay against real brokers: in order per charger, at least once, stable ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from uuid import UUID, uuid4

import aiomqtt
import pytest

from csms.core.events import Event
from csms.events.envelope import decode_event
from csms.events.mqtt import Backoff, Publisher, start_embedded_broker
from csms.events.relay import Relay
from csms.store import outbox
from csms.store.db import Database
from tests.support import MS, cancel_and_wait, drop_connections, free_port, writing

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with writing(Database(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")) as db:
        yield db


def events(charge_point_id: str, count: int) -> list[Event]:
    return [
        Event(
            id=uuid4(),
            charge_point_id=charge_point_id,
            type="meter.values",
            time=NOW,
            data={"n": n},
        )
        for n in range(count)
    ]


async def store(database: Database, batch: list[Event]) -> None:
    await database.writer.submit(partial(outbox.add_events, events=batch, now=NOW))


async def receive(client: aiomqtt.Client, count: int) -> list[tuple[str, UUID, int]]:
    got: list[tuple[str, UUID, int]] = []
    async with asyncio.timeout(10_000 * MS):
        async for message in client.messages:
            event = decode_event(bytes(message.payload))  # type: ignore[arg-type]
            got.append((event.source, event.id, event.data["n"]))
            if len(got) == count:
                return got
    raise AssertionError("subscription ended")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_events_survive_a_broker_outage_in_order(database: Database) -> None:
    """Broker down: events wait in the outbox; back up: each arrives once, in order."""
    port = free_port()
    prefix = f"t{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    backoff = Backoff(initial=50 * MS, maximum=200 * MS)
    publisher = Publisher(f"mqtt://127.0.0.1:{port}", backoff=backoff)
    relay = Relay(database=database, publisher=publisher, topic_prefix=prefix, clock=lambda: NOW)
    delivered: list[int] = []
    all_delivered = asyncio.Event()

    def count(n: int) -> None:
        delivered.append(n)
        if sum(delivered) == 8:
            all_delivered.set()

    relay.listeners.append(count)
    task = asyncio.create_task(relay.run())
    try:
        first = events("CP-1", 3)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{prefix}/events/#", qos=1)
            await store(database, first)
            relay.wake()
            assert [n for _, _, n in await receive(client, 3)] == [0, 1, 2]
        await broker.stop()
        during = events("CP-1", 5)
        await store(database, during)
        relay.wake()
        broker = await start_embedded_broker("127.0.0.1", port)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{prefix}/events/#", qos=1)
            relay.wake()
            got = await receive(client, 5)
        assert [n for _, _, n in got] == [0, 1, 2, 3, 4]
        assert [event_id for _, event_id, _ in got] == [event.id for event in during]
        async with asyncio.timeout(10_000 * MS):
            await all_delivered.wait()
        async with database.sessions() as session:
            assert await outbox.backlog(session) == (0, None)
    finally:
        await cancel_and_wait(task)
        await publisher.close()
        await broker.stop()


class StuckFor:
    """A publisher (our own seam) that never completes for one charger."""

    def __init__(self, stuck: str, inner: Publisher) -> None:
        self.stuck = stuck
        self.inner = inner

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if f"/{self.stuck}/" in topic:
            await asyncio.Event().wait()
        await self.inner.publish(topic, payload, retain=retain)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_one_stuck_charger_does_not_hold_back_the_others(database: Database) -> None:
    """Events of other chargers are delivered while one charger's publish hangs."""
    port = free_port()
    prefix = f"t{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    publisher = Publisher(f"mqtt://127.0.0.1:{port}")
    relay = Relay(
        database=database,
        publisher=StuckFor("CP-STUCK", publisher),
        topic_prefix=prefix,
        clock=lambda: NOW,
    )
    task = asyncio.create_task(relay.run())
    try:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{prefix}/events/#", qos=1)
            await store(database, events("CP-STUCK", 2) + events("CP-FINE", 3))
            relay.wake()
            got = await receive(client, 3)
        assert {source for source, _, _ in got} == {"/charge-points/CP-FINE"}
    finally:
        await cancel_and_wait(task)
        await publisher.close()
        await broker.stop()


class FailsFor:
    """A publisher (our own seam) whose publishes fail for one charger."""

    def __init__(self, failing: str, inner: Publisher) -> None:
        self.failing = failing
        self.inner = inner

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if f"/{self.failing}/" in topic:
            raise ConnectionError("refused for this test")
        await self.inner.publish(topic, payload, retain=retain)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_followers_get_the_delivered_events_as_published(database: Database) -> None:
    """In-process followers (the load balancer) get each delivered event's CloudEvent, the
    bytes the broker got (encoded once for both), and nothing that was not delivered."""
    port = free_port()
    prefix = f"t{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    publisher = Publisher(f"mqtt://127.0.0.1:{port}")
    relay = Relay(
        database=database,
        publisher=FailsFor("CP-FAILING", publisher),
        topic_prefix=prefix,
        clock=lambda: NOW,
    )
    task = asyncio.create_task(relay.run())
    try:
        with relay.fanout.subscribe() as subscription:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(f"{prefix}/events/#", qos=1)
                await store(database, events("CP-FAILING", 1) + events("CP-FINE", 3))
                relay.wake()
                published: list[bytes] = []
                async with asyncio.timeout(10_000 * MS):
                    async for message in client.messages:
                        published.append(bytes(message.payload))  # type: ignore[arg-type]
                        if len(published) == 3:
                            break
            async with asyncio.timeout(10_000 * MS):
                followed = [await subscription.queue.get() for _ in range(3)]
            assert subscription.queue.empty()
        assert [(e.charge_point_id, e.type) for e in followed if e is not None] == [
            ("CP-FINE", "meter.values")
        ] * 3
        assert [e.payload for e in followed if e is not None] == published
    finally:
        await cancel_and_wait(task)
        await publisher.close()
        await broker.stop()


async def test_an_unknown_event_type_is_published_as_it_is(database: Database) -> None:
    """A type a newer csms wrote is published as it is; the relay and later events go on."""
    port = free_port()
    prefix = f"t{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    publisher = Publisher(f"mqtt://127.0.0.1:{port}")
    relay = Relay(database=database, publisher=publisher, topic_prefix=prefix, clock=lambda: NOW)
    task = asyncio.create_task(relay.run())
    future = Event(
        id=uuid4(), charge_point_id="CP-NEW", type="tariff.changed", time=NOW, data={"n": 0}
    )
    try:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{prefix}/events/#", qos=1)
            await store(database, [future, *events("CP-NEW", 2)])
            relay.wake()
            topics: list[str] = []
            async with asyncio.timeout(10_000 * MS):
                async for message in client.messages:
                    topics.append(str(message.topic))
                    if len(topics) == 3:
                        break
        assert topics == [
            f"{prefix}/events/CP-NEW/tariff.changed",
            f"{prefix}/events/CP-NEW/meter.values",
            f"{prefix}/events/CP-NEW/meter.values",
        ]
        assert not task.done()
    finally:
        await cancel_and_wait(task)
        await publisher.close()
        await broker.stop()


@pytest.mark.postgres_only
async def test_the_relay_reads_again_after_the_database_dropped_its_connection(
    database_url: str,
) -> None:
    """The relay's reads are not pinged first: when the database has dropped its
    connection, the read runs again on a new one, and what was committed is published."""
    port = free_port()
    prefix = f"t{uuid4().hex[:8]}"
    broker = await start_embedded_broker("127.0.0.1", port)
    publisher = Publisher(f"mqtt://127.0.0.1:{port}")
    async with writing(Database(database_url)) as database:
        relay = Relay(
            database=database, publisher=publisher, topic_prefix=prefix, clock=lambda: NOW
        )
        task = asyncio.create_task(relay.run())
        try:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(f"{prefix}/events/#", qos=1)
                await store(database, events("CP-DROP", 2))
                relay.wake()
                assert [n for _, _, n in await receive(client, 2)] == [0, 1]
                assert await drop_connections(database) >= 1
                await store(database, events("CP-DROP", 3))
                relay.wake()
                assert [n for _, _, n in await receive(client, 3)] == [0, 1, 2]
        finally:
            await cancel_and_wait(task)
            await publisher.close()
            await broker.stop()
