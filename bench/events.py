"""Event path benchmark: outbox drain rate to the broker, and OCPP message -> MQTT latency.

    python bench/events.py [--backlog 100000] [--messages 2000] [--database URL]

csms runs as a subprocess (pinned to core 0 when `taskset` exists); the load and the MQTT
subscriber run here. Uses Mosquitto on 127.0.0.1:1883 when it listens, else an embedded
broker in this process. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiomqtt
import orjson
from processes import free_port, start_csms
from sqlalchemy import text
from websockets.asyncio.client import connect

from csms.core.events import Event
from csms.events.mqtt import is_listening, start_embedded_broker
from csms.store import outbox
from csms.store.db import Database


async def fill_outbox(url: str, count: int) -> None:
    """Put `count` undelivered events in the outbox of a fresh database, 10 chargers' worth."""
    database = Database(url)
    await database.migrate()
    writer = asyncio.create_task(database.writer.run())
    await add_meter_events(database, count, chargers=10, now=datetime.now(UTC))
    database.writer.close()
    await writer
    await database.dispose()


async def add_meter_events(database: Database, count: int, *, chargers: int, now: datetime) -> None:
    """`count` meter.values events into the outbox of a running writer, spread over
    `chargers` chargers, in jobs of 5,000 (bench/webhooks.py fills its backlog with it too)."""
    for start in range(0, count, 5000):
        events = [
            Event(
                id=uuid.uuid4(),
                charge_point_id=f"BENCH-{n % chargers}",
                type="meter.values",
                time=now,
                data={"connectorId": 1, "transactionId": n, "sampledValues": []},
            )
            for n in range(start, min(count, start + 5000))
        ]
        await database.writer.submit(partial(outbox.add_events, events=events, now=now))


async def undelivered(database: Database) -> int:
    async with database.sessions() as session:
        result = await session.execute(
            text("select count(*) from outbox_events where delivered_at is null")
        )
        return int(result.scalar_one())


async def drain(url: str, env: dict[str, str], count: int, prefix: str) -> dict[str, float]:
    """Start csms on a full outbox and time the relay until every row is delivered.

    The rate is taken from the outbox itself (rows marked delivered after the broker's
    PUBACK), from the first delivered row to the last; a subscriber on the broker counts
    what it receives too (a slow subscriber may be dropped by the broker's queue limits).
    """
    host, port = mqtt_address(env)
    received = 0
    database = Database(url)
    async with aiomqtt.Client(host, port, identifier=f"bench-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(f"{prefix}/events/#", qos=1)

        async def count_messages() -> None:
            nonlocal received
            # The broker may drop a subscriber that falls behind; the count is then partial.
            with contextlib.suppress(aiomqtt.MqttError):
                async for _ in client.messages:
                    received += 1

        counter = asyncio.create_task(count_messages())
        started = time.perf_counter()
        cpu = time.process_time()
        process = await start_csms(env)
        first = last = 0.0
        remaining = count
        deadline = started + 600
        while remaining > 0 and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            left = await undelivered(database)
            if left < remaining and not first:
                # Delivery started during the last poll: take its midpoint.
                first = now - 0.025
            if left < remaining:
                last = now
            remaining = left
        subscriber_cpu = time.process_time() - cpu
        await asyncio.sleep(1)  # the last events on their way to the subscriber
        counter.cancel()
    process.terminate()
    await process.wait()
    await database.dispose()
    if remaining:
        raise RuntimeError(f"outbox drain: {remaining} events still undelivered after 600 s")
    elapsed = last - started
    steady = max(last - first, 1e-3)
    print(
        f"outbox drain: {count} events in {elapsed:.1f} s = {count / elapsed:,.0f} events/s "
        f"including csms start-up, {count / steady:,.0f} events/s from the first delivery on; "
        f"the subscriber received {received}"
    )
    return {
        "events_per_s": count / steady,
        "events_per_s_with_startup": count / elapsed,
        "subscriber_cpu_pct": 100 * subscriber_cpu / elapsed,
        "received": received,
    }


async def latency(env: dict[str, str], messages: int, prefix: str) -> dict[str, float]:
    """MeterValues one at a time; time from sending each to its meter.values event."""
    host, port = mqtt_address(env)
    process = await start_csms(env)
    sent: dict[int, float] = {}
    delays: list[float] = []
    all_in = asyncio.Event()
    try:
        async with aiomqtt.Client(host, port, identifier=f"bench-{uuid.uuid4().hex[:8]}") as client:
            await client.subscribe(f"{prefix}/events/LAT-1/meter.values", qos=1)

            async def receive() -> None:
                async for message in client.messages:
                    event = orjson.loads(message.payload)  # type: ignore[arg-type]
                    n = event["data"]["transactionId"]
                    delays.append(time.perf_counter() - sent[n])
                    if len(delays) == messages:
                        all_in.set()

            receiver = asyncio.create_task(receive())
            url = f"ws://127.0.0.1:{env['CSMS_OCPP__PORT']}/ocpp/LAT-1"
            async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                boot = {"chargePointVendor": "bench", "chargePointModel": "b"}
                await ws.send(orjson.dumps([2, "b", "BootNotification", boot]).decode())
                await ws.recv()
                for n in range(messages):
                    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                    payload = {
                        "connectorId": 1,
                        "transactionId": n,
                        "meterValue": [{"timestamp": at, "sampledValue": [{"value": str(n)}]}],
                    }
                    sent[n] = time.perf_counter()
                    await ws.send(orjson.dumps([2, str(n), "MeterValues", payload]).decode())
                    await ws.recv()
            await asyncio.wait_for(all_in.wait(), timeout=120)
            receiver.cancel()
    finally:
        process.terminate()
        await process.wait()
    ms = sorted(d * 1000 for d in delays)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(
        f"OCPP MeterValues -> MQTT event: n={len(ms)} p50={statistics.median(ms):.1f} ms "
        f"p99={p99:.1f} ms max={ms[-1]:.1f} ms"
    )
    return {"p50_ms": statistics.median(ms), "p99_ms": p99, "max_ms": ms[-1]}


def mqtt_address(env: dict[str, str]) -> tuple[str, int]:
    host_port = env["CSMS_MQTT__URL"].removeprefix("mqtt://")
    host, _, port = host_port.partition(":")
    return host, int(port or 1883)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000, help="events to drain")
    parser.add_argument("--messages", type=int, default=2000, help="latency samples")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    broker = None
    if await is_listening("127.0.0.1", 1883):
        mqtt_url, where = "mqtt://127.0.0.1:1883", "Mosquitto on 127.0.0.1:1883"
    else:
        port = free_port()
        broker = await start_embedded_broker("127.0.0.1", port)
        mqtt_url, where = f"mqtt://127.0.0.1:{port}", "embedded amqtt (no Mosquitto found)"
    print(f"broker: {where}")
    with tempfile.TemporaryDirectory() as scratch:
        for phase in ("drain", "latency"):
            database = args.database or f"sqlite+aiosqlite:///{Path(scratch) / phase}.db"
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            env = {
                **os.environ,
                "CSMS_DATABASE__URL": database,
                "CSMS_OCPP__HOST": "127.0.0.1",
                "CSMS_OCPP__PORT": str(free_port()),
                "CSMS_API__PORT": str(free_port()),
                "CSMS_MQTT__URL": mqtt_url,
                "CSMS_MQTT__TOPIC_PREFIX": prefix,
                "CSMS_MQTT__EMBEDDED": "false",
                "CSMS_LOG__FORMAT": "json",
            }
            if phase == "drain":
                print(f"filling the outbox with {args.backlog} events...")
                await fill_outbox(database, args.backlog)
                await drain(database, env, args.backlog, prefix)
            else:
                await latency(env, args.messages, prefix)
    if broker is not None:
        await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
