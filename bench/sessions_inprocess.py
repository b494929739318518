"""CPU per charging session in the application layer alone: no WebSocket, no load generator.

    python bench/sessions_inprocess.py [--database sqlite|postgresql] [--chargers 100]
                                       [--sessions 5] [--repeats 3]

`SessionFlows` (with pricing and wallets, as `csms serve` builds it) driven by N concurrent
chargers, each running S sessions one after the other: Authorize, StartTransaction, three
MeterValues of four samples, StopTransaction. Prints CPU milliseconds per session (this
process's CPU time, steadier than wall time on a shared machine) and sessions/s. With 10
chargers the writer's batches are small and what each batch costs whatever its size shows;
with 100 they are large. A fresh SQLite file, or a fresh PostgreSQL database on
127.0.0.1:5432 (user postgres, trust), per repeat. Asserts nothing (docs/performance.md,
"P6, sessions under load", says how the figures were used).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from csms.core.session import Party
from csms.flows.sessions import OpenSessions, SessionFlows
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.log import configure_logging
from csms.ocpp16 import convert
from csms.store import registry
from csms.store.db import Database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARTY = Party(country_code="BE", party_id="BEC", currency="EUR")
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


def _meter_payload(at: datetime, register: int) -> list[dict[str, object]]:
    return [
        {
            "timestamp": at.isoformat(),
            "sampledValue": [
                {"value": str(register), "measurand": "Energy.Active.Import.Register"},
                {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "16", "measurand": "Current.Import", "unit": "A"},
                {"value": "230", "measurand": "Voltage", "unit": "V"},
            ],
        }
    ]


async def charger(flows: SessionFlows, cp: str, sessions: int, offset: int) -> None:
    """One charger's sessions, one after the other, each call awaited as a charger would."""
    register = itertools.count(1000, 100)
    for n in range(sessions):
        began = NOW + timedelta(hours=n, minutes=offset % 50)
        await flows.authorize(charge_point_id=cp, id_tag=TAG, now=NOW)
        start = {
            "connectorId": 1,
            "idTag": TAG,
            "meterStart": next(register),
            "timestamp": began.isoformat(),
        }
        key, _ = convert.start_key(cp, start, received=NOW)
        opened: OpenSessions = {}
        outcome = await flows.start(
            key=key,
            reservation_id=None,
            flags=(),
            location_id=None,
            open_sessions=opened,
            now=NOW,
        )
        tx = outcome.transaction_id
        for minute in range(1, 4):
            payload = _meter_payload(began + timedelta(minutes=minute), next(register))
            await flows.meter_values(
                charge_point_id=cp,
                connector_id=1,
                transaction_id=tx,
                samples=convert.samples(payload, received=NOW),
                location_id=None,
                open_sessions=opened,
                now=NOW,
            )
        stop = {
            "transactionId": tx,
            "meterStop": next(register),
            "timestamp": (began + timedelta(minutes=10)).isoformat(),
            "idTag": TAG,
        }
        request = convert.stop_request(cp, stop, received=NOW)
        await flows.stop(request=request, location_id=None, open_sessions=opened, now=NOW)


async def run_once(kind: str, chargers: int, sessions: int) -> tuple[float, float]:
    """One run on a fresh database: (CPU ms per session, sessions/s)."""
    async with fresh_url(kind) as url:
        database = Database(url)
        await database.migrate()
        pricing = SessionPricing(database=database, party=PARTY)
        wallet = WalletFlows(database=database, party=PARTY, pricing=pricing, clock=lambda: NOW)
        flows = SessionFlows(database=database, party=PARTY, pricing=pricing, wallet=wallet)
        writer = asyncio.create_task(database.writer.run())
        try:
            await database.writer.submit(
                lambda session: registry.upsert_id_tag(
                    session, id_tag=TAG, values={"status": "Accepted"}, now=NOW
                )
            )
            # Warm-up: statement caches, prepared statements, imports.
            await asyncio.gather(*(charger(flows, f"WARM-{n}", 1, n) for n in range(20)))
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(
                *(charger(flows, f"CP-{n:04d}", sessions, n) for n in range(chargers))
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            database.writer.close()
            await writer
            await database.dispose()
    total = chargers * sessions
    return 1000 * cpu / total, total / wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # As `make bench` runs csms: warnings only (an info line per CDR would be measured too).
    configure_logging(level="warning", fmt="json")
    results = []
    for n in range(args.repeats):
        ms, rate = await run_once(args.database, args.chargers, args.sessions)
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
