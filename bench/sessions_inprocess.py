"""CPU per charging session in the application layer alone: no WebSocket, no load generator.

    python bench/sessions_inprocess.py [--database sqlite|postgresql] [--chargers 100]
                                       [--sessions 5] [--repeats 3] [--sampled 4]

`SessionFlows` (with pricing and wallets, as `csms serve` builds it) driven by N concurrent
chargers (known to the database, as after their BootNotification; --unregistered: not),
each running S sessions one after the other: Authorize, StartTransaction, three
MeterValues of four sampled values (--sampled: up to 10, as the charger simulator of the
"sessions under load" issue sent), StopTransaction. Prints CPU milliseconds per session (this
process's CPU time, steadier than wall time on a shared machine) and sessions/s. With 10
chargers the writer's batches are small and what each batch costs whatever its size shows;
with 100 they are large. A fresh SQLite file, or a fresh PostgreSQL database on
127.0.0.1:5432 (user postgres, trust), per repeat. Asserts nothing (docs/performance.md,
"P6, sessions under load", says how the figures were used).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

# The setup and the calls are those of tests/flows/test_session_groups.py (tests/session_flows.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.flows.sessions import OpenSessions, SessionFlows
from csms.log import configure_logging
from csms.store import chargers as charge_points
from tests import session_flows
from tests.session_flows import NOW, RunningFlows, energy, running_flows

TAG = "BENCH-TAG"
PG_HOST = "127.0.0.1"


@asynccontextmanager
async def fresh_url(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="csms-inproc-") as scratch:
            yield f"sqlite+aiosqlite:///{Path(scratch) / 'csms.db'}"
        return
    name = f"inproc_{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(_pg_tool, "createdb", name)
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    finally:
        await asyncio.to_thread(_pg_tool, "dropdb", name)


def _pg_tool(tool: str, name: str) -> None:
    subprocess.run([tool, "-h", PG_HOST, "-U", "postgres", name], check=True)


# What a MeterValues samples after the energy register, in order (--sampled takes the first
# ones): power, current and voltage, then what chargers with more to say send.
_OTHERS: list[dict[str, object]] = [
    {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
    {"value": "16", "measurand": "Current.Import", "unit": "A"},
    {"value": "230", "measurand": "Voltage", "unit": "V"},
    {"value": "231", "measurand": "Voltage", "unit": "V", "phase": "L2-N"},
    {"value": "229", "measurand": "Voltage", "unit": "V", "phase": "L3-N"},
    {"value": "32", "measurand": "Current.Offered", "unit": "A"},
    {"value": "22000", "measurand": "Power.Offered", "unit": "W"},
    {"value": "31", "measurand": "Temperature", "unit": "Celsius"},
    {"value": "50", "measurand": "Frequency"},
]


def _sampled(register: int, count: int) -> list[dict[str, object]]:
    return [energy(register), *_OTHERS[: count - 1]]


async def charger(
    flows: SessionFlows, cp: str, sessions: int, offset: int, *, sampled: int = 4
) -> None:
    """One charger's sessions, one after the other, each call awaited as a charger would."""
    register = itertools.count(1000, 100)
    for n in range(sessions):
        began = NOW + timedelta(hours=n, minutes=offset % 50)
        await flows.authorize(charge_point_id=cp, id_tag=TAG, now=NOW)
        key = session_flows.start_key(cp, tag=TAG, at=began, meter_start=next(register))
        opened: OpenSessions = {}
        tx = (await session_flows.start(flows, key, opened)).transaction_id
        for minute in range(1, 4):
            at = began + timedelta(minutes=minute)
            await session_flows.meter_values(
                flows, cp, tx, at=at, sampled=_sampled(next(register), sampled), opened=opened
            )
        at = began + timedelta(minutes=10)
        await session_flows.stop(
            flows, cp, tx, at=at, meter_stop=next(register), tag=TAG, opened=opened
        )


async def register(running: RunningFlows, names: list[str]) -> None:
    """The chargers as their BootNotification leaves them: known, at no location (as P6's)."""
    for name in names:
        await running.database.writer.submit(
            lambda session, name=name: charge_points.upsert_charge_point(
                session, charge_point_id=name, values={}, now=NOW
            )
        )


async def run_once(
    kind: str, chargers: int, sessions: int, *, sampled: int = 4, registered: bool = True
) -> tuple[float, float]:
    """One run on a fresh database: (CPU ms per session, sessions/s)."""
    async with fresh_url(kind) as url, running_flows(url, accepted=[TAG]) as running:
        flows = running.flows
        if registered:
            await register(
                running, [f"WARM-{n}" for n in range(20)] + [f"CP-{n:04d}" for n in range(chargers)]
            )
        # Warm-up: statement caches, prepared statements, imports.
        await asyncio.gather(*(charger(flows, f"WARM-{n}", 1, n) for n in range(20)))
        # As `csms serve` does at its start (csms/__main__.py): the long-lived objects out of
        # the collector's sight, else a full collection of them is measured too.
        gc.collect()
        gc.freeze()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(
            *(charger(flows, f"CP-{n:04d}", sessions, n, sampled=sampled) for n in range(chargers))
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        gc.unfreeze()
    total = chargers * sessions
    return 1000 * cpu / total, total / wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sampled",
        type=int,
        choices=range(1, len(_OTHERS) + 2),
        default=4,
        metavar="1-10",
        help="sampled values per MeterValues (default 4: energy, power, current, voltage)",
    )
    parser.add_argument(
        "--unregistered",
        action="store_true",
        help="chargers unknown to the database (as the figures before 2026-12-07 evening)",
    )
    args = parser.parse_args()
    # As `make bench` runs csms: warnings only (an info line per CDR would be measured too).
    configure_logging(level="warning", fmt="json")
    results = []
    for n in range(args.repeats):
        ms, rate = await run_once(
            args.database,
            args.chargers,
            args.sessions,
            sampled=args.sampled,
            registered=not args.unregistered,
        )
        results.append(ms)
        print(f"run {n + 1}: {ms:.2f} ms CPU per session, {rate:.0f} sessions/s (wall)")
    print(
        f"{args.database}, {args.chargers} chargers x {args.sessions} sessions: median "
        f"{statistics.median(results):.2f} ms CPU per session "
        f"({1000 / statistics.median(results):.0f} sessions per CPU-second)"
    )


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
