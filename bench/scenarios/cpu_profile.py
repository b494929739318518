"""PROFILE, cpu_profile: py-spy on csms under load (P1, P2 and P6), its CPU time by layer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadgen import run_load
from processes import reference_server
from profiling import breakdown, py_spy
from report import Report, progress

from scenarios.common import Options
from scenarios.persisted_path import run_persisted
from scenarios.session_lifecycle import CHARGERS, profile_notes, run_lifecycle


async def cpu_profile(report: Report, opts: Options) -> None:
    progress("PROFILE: py-spy on csms under load, CPU time by layer")
    for name, transport in (("csms", "websockets"), ("csms-picows", "picows")):
        async with reference_server(name) as server:
            out = opts.scratch / f"p1-{transport}.raw"

            spy: list[asyncio.Task[None]] = []

            def window(
                pid: int = server.pid, out: Path = out, spy: list[asyncio.Task[None]] = spy
            ) -> None:
                spy.append(asyncio.create_task(py_spy(pid, out, opts.duration)))

            await run_load(
                server,
                connections=100,
                duration=opts.duration,
                warmup=opts.warmup,
                on_window=window,
                generator="c",
            )
            for task in spy:
                await task
            report.profiles[f"P1 csms protocol path ({transport}), 100 conn."] = breakdown(out)
    kinds = ["sqlite"] if opts.quick else ["sqlite", "postgresql"]
    for kind in kinds:
        out = opts.scratch / f"p2-{kind}.raw"
        await run_persisted(opts, kind, 100, profile=out)
        report.profiles[f"P2 csms + {kind}, 100 conn."] = breakdown(out)
    for kind in kinds:
        out = opts.scratch / f"p6-{kind}.raw"
        await run_lifecycle(opts, kind, CHARGERS, 0, profile=out)
        name = f"P6 csms + {kind}, {CHARGERS} chargers, full rate"
        report.profiles[name] = breakdown(out)
        profile_notes(report, name, out)
    for name, shares in report.profiles.items():
        progress(f"  {name}: " + ", ".join(f"{k} {v:.0f} %" for k, v in shares.items()))
