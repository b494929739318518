"""P2, persisted_path: `csms serve` with storage and events, and a count of what it stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from loadgen import run_load
from processes import csms_server, fresh_database, pin_backends
from profiling import py_spy
from report import Report, Row, progress

from scenarios.common import Options, load_rows

LABEL = "P2"

# Issue 20's P2 target is 2x the calls/s of the run it was filed from (docs/performance.md at
# b9d6fd5, 2026-11-22, medians of 3), with nothing lost and p99 < 50 ms at 100 connections.
FILED_CALLS_PER_S = {
    ("sqlite", "100 conn."): 5362.0,
    ("sqlite", "1000 conn."): 5504.0,
    ("postgresql", "100 conn."): 4266.0,
    ("postgresql", "1000 conn."): 4160.0,
}
P2_TARGET_P99_MS = 50.0


async def run_persisted(
    opts: Options, kind: str, connections: int, *, profile: Path | None = None
) -> dict[str, Any]:
    """One load run on a fresh database; the result with what was stored and what was lost.

    With `profile`, py-spy samples csms over the measured window into that file.
    """
    with fresh_database(kind, opts.scratch) as database:
        async with csms_server(database, opts.scratch) as server:
            spy: list[asyncio.Task[None]] = []

            def window() -> None:
                pin_backends(database, server)
                if profile is not None:
                    spy.append(asyncio.create_task(py_spy(server.pid, profile, opts.duration)))

            run = await run_load(
                server,
                connections=connections,
                duration=opts.duration,
                warmup=opts.warmup,
                extra=["--start-tx"],
                on_window=window,
            )
            for task in spy:
                await task
        # csms stopped: every acknowledged write is committed. Count what is there.
        samples = run["meter_values_acked"] * run["samples_per_meter_values"]
        rows = database.count("select count(*) from meter_values")
        events = database.count(
            "select count(*) from outbox_events where type in ('meter.values', 'session.updated')"
        )
        run["rows"] = rows
        run["rows_expected"] = samples
        run["events"] = events
        run["events_expected"] = 2 * run["meter_values_acked"]
        run["lost"] = max(0, samples - rows) + max(0, run["events_expected"] - events)
    return run


async def persisted_path(report: Report, opts: Options) -> None:
    progress("P2 full path: csms serve with storage and events (group commit, outbox)")
    kinds = ["sqlite"] if opts.quick else ["sqlite", "postgresql"]
    sizes = [100] if opts.quick else [100, 1000]
    for kind in kinds:
        for connections in sizes:
            runs = []
            for n in range(opts.repeats):
                progress(f"P2 {kind} {connections} connections, run {n + 1}/{opts.repeats}")
                runs.append(await run_persisted(opts, kind, connections))
            lost = sum(r["lost"] for r in runs)
            load_rows(report, LABEL, f"csms + {kind}", f"{connections} conn.", runs)
            report.add(
                Row(
                    LABEL,
                    f"csms + {kind}",
                    f"{connections} conn.",
                    "lost (rows + events)",
                    "",
                    [float(r["lost"]) for r in runs],
                    note=f"of {sum(r['rows_expected'] + r['events_expected'] for r in runs):,}",
                    higher_is_better=False,
                )
            )
            if lost:
                report.notes.append(f"P2 {kind} {connections}: {lost} rows/events missing")
