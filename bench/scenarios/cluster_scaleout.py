"""C1, scale-out: one node's throughput in cluster mode against the same node standalone,
in one run, and a forwarded command's round trip (bench/cluster.py does the work; issue
18's targets: >= 0.9x, p99 < 20 ms). Needs PostgreSQL and Mosquitto on 127.0.0.1."""

from __future__ import annotations

import statistics

from cluster import _one_run, forwarded
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "C1"
CHARGERS = 200
COMMANDS = 500


async def cluster_scaleout(report: Report, opts: Options) -> None:
    runs: dict[str, list[dict[str, float]]] = {"standalone": [], "cluster": []}
    commands: list[dict[str, float]] = []
    try:
        for n in range(opts.repeats):
            for mode in runs:  # alternated, so that a drifting machine load hits both
                progress(f"C1 {mode}: {CHARGERS} chargers, run {n + 1}/{opts.repeats}")
                runs[mode].append(await _one_run(mode, CHARGERS, opts.duration))
            progress(f"C1 forwarded commands: {COMMANDS}, run {n + 1}/{opts.repeats}")
            commands.append(await forwarded(COMMANDS))
    except OSError as exc:  # no PostgreSQL or Mosquitto here
        progress(f"C1 skipped: {exc}")
        return
    setting = f"{CHARGERS} chargers, MeterValues closed loop"
    for mode, results in runs.items():
        report.add(
            Row(
                LABEL,
                f"csms {mode} + postgresql",
                setting,
                "messages",
                "msgs/s",
                [r["msgs_per_s"] for r in results],
            )
        )
    ratios = [
        c["msgs_per_s"] / s["msgs_per_s"]
        for s, c in zip(runs["standalone"], runs["cluster"], strict=True)
    ]
    report.add(
        Row(
            LABEL,
            "csms cluster / standalone",
            setting,
            "throughput ratio",
            "x",
            ratios,
            note=f"(target >= 0.9: {statistics.median(ratios):.2f}x)",
        )
    )
    report.add(
        Row(
            LABEL,
            "csms cluster, 2 nodes",
            f"{COMMANDS} ClearCache one after another",
            "forwarded command p99",
            "ms",
            [c["forwarded_p99_ms"] for c in commands],
            note="(target < 20 ms)",
            higher_is_better=False,
        )
    )
