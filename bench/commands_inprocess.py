"""P4's command path in the application layer alone: no HTTP, no WebSocket, no generator.

    python bench/commands_inprocess.py [--database sqlite|postgresql] [--chargers 100]
                                       [--commands 1000] [--pace-ms 100] [--repeats 1]

`Commands.check` (the charger's read) and `Commands.send` (the CALL to a charger that
answers at once, and the command's commit with its event), idle and while 100
chargers run P2's persisted calls (bench/persisted_inprocess.py's `Load`: MeterValues and
Heartbeats, each charger waiting --pace-ms between calls) through the same writer and loop.
The charger's read goes either way, alternating command by command in one process:
`session` reads it in a session (the path before the inline read), `inline` through
`Database.read_first` (on SQLite on the loop's thread; on PostgreSQL in a session too).
A fresh SQLite file or PostgreSQL database (bench/sessions_inprocess.py's `fresh_url`).
Prints, per way, the latency p50/p99 of the read, of the record (from the charger's answer
to the commit) and of the whole command, and the CPU
per read measured idle (this process, aiosqlite's threads included; not PostgreSQL's
backends). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from persisted_inprocess import Load
from sessions_inprocess import fresh_url
from sqlalchemy.ext.asyncio import AsyncSession

from csms.flows.chargers import ChargerFlows
from csms.flows.commands import ChargerLink, Commands
from csms.flows.sessions import SessionFlows
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.log import configure_logging
from csms.store import chargers as chargers_store
from csms.store.db import Database
from tests.session_flows import PARTY


class Answering:
    """A charger that answers every CALL at the loop's next turn."""

    calls_queued = 0
    answered = 0.0  # when the last CALL was answered (perf_counter)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.answered = time.perf_counter()
        return {"configurationKey": []}


class HereOnly:
    """Cluster links that are never asked: every charger is connected here. With them,
    `Commands.check` reads the charger in an aiosqlite session (its cluster-mode path)."""

    async def find(self, charge_point_id: str) -> ChargerLink | None:
        raise AssertionError(charge_point_id)

    async def owner_in(self, session: AsyncSession, charge_point_id: str) -> str | None:
        raise AssertionError(charge_point_id)

    def link(self, owner: str | None, charge_point_id: str) -> ChargerLink | None:
        raise AssertionError(charge_point_id)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _commands(
    commands: Commands, names: list[str], count: int, interval: float
) -> dict[str, dict[str, list[float]]]:
    clock = time.perf_counter
    out: dict[str, dict[str, list[float]]] = {
        way: {"read": [], "record": [], "command": []} for way in ("session", "inline")
    }
    for n in range(count):
        way = "session" if n % 2 == 0 else "inline"
        commands.remote = HereOnly() if way == "session" else None
        cp = names[n % len(names)]
        began = clock()
        link = await commands.check(cp, "GetConfiguration", {})
        read = clock()
        await commands.send(link, cp, "GetConfiguration", {}, requested_by="bench")
        done = clock()
        assert isinstance(link, Answering)
        out[way]["read"].append(read - began)
        out[way]["record"].append(done - link.answered)
        out[way]["command"].append(done - began)
        await asyncio.sleep(interval)
    return out


async def _cpu_per_read(commands: Commands, names: list[str], reads: int) -> dict[str, float]:
    """CPU microseconds per read, each way, idle: blocks of 50, alternating."""
    cpu: dict[str, list[float]] = {"session": [], "inline": []}
    for block in range(2 * reads // 50):
        way = "session" if block % 2 == 0 else "inline"
        commands.remote = HereOnly() if way == "session" else None
        began = time.process_time()
        for n in range(50):
            await commands.check(names[n % len(names)], "GetConfiguration", {})
        cpu[way].append(1e6 * (time.process_time() - began) / 50)
    return {way: statistics.median(v) for way, v in cpu.items()}


def _line(label: str, runs: dict[str, dict[str, list[float]]], cpu: dict[str, float]) -> None:
    for way, seg in runs.items():
        parts = " | ".join(
            f"{name} p50 {_pct(seg[name], 0.5):6.2f} p99 {_pct(seg[name], 0.99):7.2f} ms"
            for name in ("read", "record", "command")
        )
        print(f"{label:6} {way:8} {parts} | idle CPU/read {cpu[way]:4.0f} µs", flush=True)


async def run_once(kind: str, chargers: int, count: int, pace: float) -> None:
    async with fresh_url(kind) as url:
        database = Database(url)
        await database.migrate()
        clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
        pricing = SessionPricing(database=database, party=PARTY)
        wallet = WalletFlows(database=database, party=PARTY, pricing=pricing, clock=clock)
        sessions = SessionFlows(database=database, party=PARTY, pricing=pricing, wallet=wallet)
        load = Load(sessions, ChargerFlows(database=database, party=PARTY))
        writer = asyncio.create_task(database.writer.run())
        try:
            names = [f"CP-{n:04d}" for n in range(chargers)]
            for cp in names:
                await database.writer.submit_bulk(
                    chargers_store.registration(charge_point_id=cp, now=clock())
                )
            opened = await asyncio.gather(*(load.prepare(cp) for cp in names))
            links: dict[str, ChargerLink] = dict.fromkeys(names, Answering())
            commands = Commands(
                chargers=links,
                database=database,
                check_request=lambda _action, _payload: None,
                clock=clock,
                queue_size=10,
                call_timeout=30,
            )
            cpu = await _cpu_per_read(commands, names, 1000)
            _line("idle", await _commands(commands, names, count, 0.005), cpu)
            stop = asyncio.Event()

            async def paced(cp: str, tx: int, o: Any) -> None:
                while not stop.is_set():
                    await load.charger(cp, tx, o, 2)
                    await asyncio.sleep(pace)

            background = [
                asyncio.create_task(paced(cp, tx, o))
                for cp, (tx, o) in zip(names, opened, strict=True)
            ]
            await asyncio.sleep(1)
            load.latencies.clear()
            began = time.perf_counter()
            runs = await _commands(commands, names, count, 0.005)
            rate = len(load.latencies) / (time.perf_counter() - began)
            stop.set()
            await asyncio.gather(*background)
            _line("loaded", runs, cpu)
            print(f"       background {rate:,.0f} calls/s", flush=True)
        finally:
            database.writer.close()
            await writer
            await database.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--pace-ms", type=float, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    configure_logging(level="warning", fmt="json")
    sys.setswitchinterval(0.0005)  # as `csms serve` (csms/app.py)
    for _ in range(args.repeats):
        await run_once(args.database, args.chargers, args.commands, args.pace_ms / 1000)


if __name__ == "__main__":
    asyncio.run(main())
