"""P5, the event path to Mosquitto: event_latency (OCPP -> MQTT) and outbox_drain."""

from __future__ import annotations

import asyncio
import os
import uuid
from types import ModuleType

from processes import MQTT_URL, Database, free_port, fresh_database
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "P5"
BACKLOG = 100_000


def bench_events() -> ModuleType:
    """bench/events.py, imported only when needed: it pulls in csms and aiomqtt."""
    import events

    return events


async def event_latency(report: Report, opts: Options) -> None:
    progress("P5 events: OCPP -> MQTT latency (Mosquitto)")
    if not await broker_listening(report):
        return
    events = bench_events()
    messages = 500 if opts.quick else 2000
    latencies: list[dict[str, float]] = []
    for n in range(opts.repeats):
        progress(f"P5 latency ({messages} MeterValues), run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            env = events_env(database)
            latencies.append(await events.latency(env, messages, env["CSMS_MQTT__TOPIC_PREFIX"]))
    for metric, key in (("OCPP -> MQTT p50", "p50_ms"), ("OCPP -> MQTT p99", "p99_ms")):
        report.add(
            Row(
                LABEL,
                "csms + sqlite",
                "1 charger, one at a time",
                metric,
                "ms",
                [r[key] for r in latencies],
                higher_is_better=False,
            )
        )


async def outbox_drain(report: Report, opts: Options) -> None:
    if opts.quick:
        progress("P5 outbox drain: not part of --quick, skipped")
        return
    progress("P5 events: outbox drain (Mosquitto)")
    if not await broker_listening(report):
        return
    events = bench_events()
    drains: list[dict[str, float]] = []
    for n in range(opts.repeats):
        progress(f"P5 drain of {BACKLOG:,} events, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            env = events_env(database)
            await events.fill_outbox(database.url, BACKLOG)
            drains.append(
                await events.drain(database.url, env, BACKLOG, env["CSMS_MQTT__TOPIC_PREFIX"])
            )
    report.add(
        Row(
            LABEL,
            "csms + sqlite",
            f"backlog {BACKLOG:,}",
            "outbox drain",
            "events/s",
            [r["events_per_s"] for r in drains],
            [r["subscriber_cpu_pct"] for r in drains],
        )
    )


def events_env(database: Database) -> dict[str, str]:
    """csms's environment for bench/events.py: Mosquitto only, a topic prefix of its own."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "CSMS_DATABASE__URL": database.url,
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_API__PORT": str(free_port()),
        "CSMS_MQTT__URL": MQTT_URL,
        "CSMS_MQTT__TOPIC_PREFIX": prefix,
        "CSMS_MQTT__EMBEDDED": "false",
        "CSMS_LOG__FORMAT": "json",
    }


async def broker_listening(report: Report) -> bool:
    """Whether Mosquitto listens; if not, the scenario is skipped with a note."""
    if await is_listening_mqtt():
        return True
    report.notes.append("P5 skipped: no MQTT broker on 127.0.0.1:1883 (start Mosquitto)")
    return False


async def is_listening_mqtt() -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 1883), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
