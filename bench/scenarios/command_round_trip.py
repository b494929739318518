"""P4, command_round_trip: HTTP command -> charger -> HTTP answer, idle and under P2's load."""

from __future__ import annotations

import uuid
from typing import Any

from loadgen import command_client, command_options, run_load
from processes import csms_server, fresh_database
from report import Report, Row, progress

from scenarios.common import Options
from scenarios.persisted_path import LABEL as PERSISTED_LABEL
from scenarios.persisted_path import run_persisted

LABEL = "P4"


async def command_round_trip(report: Report, opts: Options) -> None:
    progress("P4 command round-trip: HTTP -> charger -> HTTP")
    commands = 200 if opts.quick else 500
    idle: list[dict[str, Any]] = []
    for n in range(opts.repeats):
        progress(f"P4 idle, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(database, opts.scratch) as server:
                result = await command_client(server, 100, commands, f"C{uuid.uuid4().hex[:5]}-")
                idle.append(result["commands"] | {"cpu": result.get("cpu_pct", 0.0)})
    add_command_rows(report, "idle (100 chargers)", idle, [r["cpu"] for r in idle])
    if opts.quick:
        return
    target = max(100, int(await persisted_rate(report, opts) * 0.5))
    loaded: list[dict[str, Any]] = []
    for n in range(opts.repeats):
        progress(f"P4 at 50 % of P2 ({target:,} calls/s), run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(database, opts.scratch) as server:
                run = await run_load(
                    server,
                    connections=100,
                    duration=opts.duration,
                    warmup=opts.warmup,
                    extra=["--start-tx", "--rate", str(target), *command_options(server, commands)],
                )
                run["commands"]["load"] = run["calls_per_s"]
                loaded.append(run["commands"] | {"cpu": run["cpu_pct"]})
    add_command_rows(
        report,
        f"at {target:,} calls/s (50 % of P2)",
        loaded,
        [r["cpu"] for r in loaded],
    )


async def persisted_rate(report: Report, opts: Options) -> float:
    """P2's SQLite rate at 100 connections: from the report, or measured once here."""
    p2_rate = report.find(PERSISTED_LABEL, "csms + sqlite", "100 conn.", "throughput")
    if p2_rate is None or p2_rate.median is None:
        progress("P4 needs the P2 SQLite rate: measuring it once")
        probe = await run_persisted(opts, "sqlite", 100)
        rate: float = probe["calls_per_s"]
        return rate
    return p2_rate.median


def add_command_rows(
    report: Report, setting: str, runs: list[dict[str, Any]], gen_cpu: list[float]
) -> None:
    bad = sum(n for r in runs for status, n in r["statuses"].items() if status != "200")
    for metric, key in (("command p50", "p50_ms"), ("command p99", "p99_ms")):
        report.add(
            Row(
                LABEL,
                "csms + sqlite",
                setting,
                metric,
                "ms",
                [r[key] for r in runs if r[key] is not None],
                gen_cpu,
                note=f"({bad} failed)" if bad else "",
                higher_is_better=False,
            )
        )
