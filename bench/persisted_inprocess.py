"""CPU per call on P2's persisted path in the application layer alone: no WebSocket, no generator.

    python bench/persisted_inprocess.py [--database sqlite|postgresql] [--chargers 100]
                                        [--calls 200] [--repeats 3]

What `csms serve` does for P2's load (docs/performance.md, "How it was measured"), without
the OCPP transport: N chargers, each booted with a transaction open, alternate a
MeterValues (one meterValue, four samples) and a Heartbeat, each call awaited as a charger
awaits its answer; the writer commits them in batches, and the outbox relay publishes the
events to Mosquitto (127.0.0.1:1883) and marks them delivered, as in `csms serve`.

Prints per repeat: CPU microseconds per call of this process and, on PostgreSQL, of the
database's backends (both pinned nowhere: CPU time, steadier than wall time on a shared
machine), calls/s (wall), the latency p50/p99 of a call from submit to commit, and the
rows and events counted against the calls made once the relay has drained (`lost`), and
the garbage collector's pauses (their share of the wall time, the longest). The collector
is set as `csms serve` sets it (`--collector default`: as before csms.app.settle_collector).
A fresh SQLite file, or a fresh PostgreSQL database on 127.0.0.1:5432 (user postgres,
trust), per repeat. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sessions_inprocess import fresh_url
from sqlalchemy import text

from csms.app import GIL_SWITCH_INTERVAL, settle_collector
from csms.core.charger import BootInfo
from csms.events.mqtt import Publisher
from csms.events.relay import Relay
from csms.flows.chargers import ChargerFlows
from csms.flows.sessions import OpenSessions, SessionFlows
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.log import configure_logging
from csms.ocpp16 import convert
from csms.store.db import Database
from tests.session_flows import PARTY

MQTT_URL = "mqtt://127.0.0.1:1883"
TAG = "BENCH"


def _meter_payload(at: datetime, register: int) -> list[dict[str, object]]:
    # As bench/node/loadgen.js sends it: one meterValue, four sampled values.
    return [
        {
            "timestamp": at.isoformat(),
            "sampledValue": [
                {
                    "value": str(register),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh",
                },
                {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16", "measurand": "Current.Import", "unit": "A"},
                {"value": "230", "measurand": "Voltage", "unit": "V"},
            ],
        }
    ]


class Load:
    """The chargers' calls and their latencies."""

    def __init__(self, sessions: SessionFlows, chargers: ChargerFlows) -> None:
        self.sessions = sessions
        self.chargers = chargers
        self.latencies: list[float] = []
        self.meter_values = 0

    async def prepare(self, cp: str) -> tuple[int, OpenSessions]:
        now = datetime.now(UTC)
        await self.chargers.connected(charge_point_id=cp, remote_address=None, now=now)
        await self.chargers.booted(
            charge_point_id=cp, info=BootInfo(vendor="bench", model="inproc"), now=now
        )
        start = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": now.isoformat()}
        key, _ = convert.start_key(cp, start, received=now)
        opened: OpenSessions = {}
        outcome = await self.sessions.start(
            key=key, reservation_id=None, flags=(), location_id=None, open_sessions=opened, now=now
        )
        return outcome.transaction_id, opened

    async def charger(self, cp: str, tx: int, opened: OpenSessions, calls: int) -> None:
        at = datetime.now(UTC)
        register = 0
        clock = time.perf_counter
        for n in range(calls):
            now = datetime.now(UTC)
            began = clock()
            if n % 2 == 0:
                register += 10
                at += timedelta(milliseconds=1)
                await self.sessions.record_meter_values(
                    charge_point_id=cp,
                    connector_id=1,
                    transaction_id=tx,
                    samples=convert.samples(_meter_payload(at, register), received=now),
                    location_id=None,
                    open_sessions=opened,
                    now=now,
                )
                self.meter_values += 1
            else:
                await self.chargers.seen(charge_point_id=cp, now=now)
            self.latencies.append(clock() - began)


class Pauses:
    """The garbage collector's pauses (gc.callbacks), wall time on the event loop's thread."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0
        self.counting = False

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.counting:
            self.pauses.append(time.perf_counter() - self._started)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backend_pids(database: Database) -> list[int]:
    if not database.url.startswith("postgresql"):
        return []
    async with database.engine.connect() as connection:
        mine = (await connection.execute(text("select pg_backend_pid()"))).scalar_one()
        rows = await connection.execute(
            text("select pid from pg_stat_activity where datname = current_database()")
        )
        return [int(pid) for (pid,) in rows if pid != mine]


async def _count(database: Database, sql: str) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(text(sql))).scalar_one())


async def run_once(
    kind: str, chargers: int, calls: int, collector: str = "serve"
) -> dict[str, float]:
    async with fresh_url(kind) as url:
        database = Database(url)
        await database.migrate()
        pricing = SessionPricing(database=database, party=PARTY)
        wallet = WalletFlows(
            database=database, party=PARTY, pricing=pricing, clock=lambda: datetime.now(UTC)
        )
        sessions = SessionFlows(database=database, party=PARTY, pricing=pricing, wallet=wallet)
        charger_flows = ChargerFlows(database=database, party=PARTY)
        publisher = Publisher(MQTT_URL)
        relay = Relay(
            database=database,
            publisher=publisher,
            topic_prefix=f"bench-inproc-{uuid.uuid4().hex[:8]}",
            clock=lambda: datetime.now(UTC),
        )
        database.writer.listeners.append(relay.wake)
        writer = asyncio.create_task(database.writer.run())
        relaying = asyncio.create_task(relay.run())
        load = Load(sessions, charger_flows)
        if collector == "serve":
            # As `csms serve` once started (csms.app.serve).
            settle_collector()
        # As `csms serve` (csms.app, Csms.run): the loop's thread gets the interpreter lock
        # back from aiosqlite's and the checkpoint's threads within 0.5 ms, not 5.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        try:
            names = [f"CP-{n:04d}" for n in range(chargers)]
            opened = await asyncio.gather(*(load.prepare(cp) for cp in names))
            # Warm-up: statement caches, prepared statements.
            await asyncio.gather(
                *(load.charger(cp, tx, o, 20) for cp, (tx, o) in zip(names, opened, strict=True))
            )
            load.latencies.clear()
            load.meter_values = 0
            before_mv = await _count(database, "select count(*) from meter_values")
            before_ev = await _count(
                database,
                "select count(*) from outbox_events where type in "
                "('meter.values', 'session.updated')",
            )
            backends = await _backend_pids(database)
            pauses = Pauses()
            gc.callbacks.append(pauses)
            pauses.counting = True
            cpu, wall = time.process_time(), time.perf_counter()
            db_cpu = sum(_cpu_seconds(p) for p in backends)
            await asyncio.gather(
                *(load.charger(cp, tx, o, calls) for cp, (tx, o) in zip(names, opened, strict=True))
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            db_cpu = sum(_cpu_seconds(p) for p in backends) - db_cpu
            pauses.counting = False
            gc.callbacks.remove(pauses)
            await relay.flush(within=30)
        finally:
            relaying.cancel()
            database.writer.close()
            await writer
            await publisher.close()
        rows = await _count(database, "select count(*) from meter_values") - before_mv
        events = (
            await _count(
                database,
                "select count(*) from outbox_events where type in "
                "('meter.values', 'session.updated')",
            )
            - before_ev
        )
        undelivered = await _count(
            database, "select count(*) from outbox_events where delivered_at is null"
        )
        await database.dispose()
    total = chargers * calls
    lat = sorted(load.latencies)
    return {
        "us_per_call": 1e6 * cpu / total,
        "db_us_per_call": 1e6 * db_cpu / total,
        "calls_per_s": total / wall,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
        "gc_share": sum(pauses.pauses) / wall,
        "gc_max_ms": 1000 * max(pauses.pauses, default=0.0),
        "lost": max(0, 4 * load.meter_values - rows)
        + max(0, 2 * load.meter_values - events)
        + undelivered,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--calls", type=int, default=200, help="calls per charger, measured")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--collector",
        choices=("serve", "default"),
        default="serve",
        help="serve: the garbage collector as `csms serve` sets it once started "
        "(csms.app.settle_collector); default: only the import-time freeze",
    )
    args = parser.parse_args()
    configure_logging(level="warning", fmt="json")
    results = []
    for n in range(args.repeats):
        r = await run_once(args.database, args.chargers, args.calls, args.collector)
        results.append(r)
        print(
            f"run {n + 1}: {r['us_per_call']:.0f} µs CPU per call (+ {r['db_us_per_call']:.0f} "
            f"database), {r['calls_per_s']:.0f} calls/s (wall), p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, lost {r['lost']:.0f}; collector pauses "
            f"{100 * r['gc_share']:.1f} % of the time, longest {r['gc_max_ms']:.1f} ms",
            flush=True,
        )
    cpu = statistics.median(r["us_per_call"] + r["db_us_per_call"] for r in results)
    print(
        f"{args.database}, {args.chargers} chargers x {args.calls} calls: median {cpu:.0f} µs "
        f"CPU per call, csms and database ({1e6 / cpu:.0f} calls per CPU-second)"
    )


if __name__ == "__main__":
    # As `csms serve` starts (csms.__main__): what the imports made, frozen.
    gc.freeze()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
