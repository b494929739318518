"""What every scenario takes (Options) and the rows of a load run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import Report, Row


@dataclass
class Options:
    repeats: int
    duration: float  # measured seconds per load run
    warmup: float  # seconds per load run before the measured window
    quick: bool
    scratch: Path  # databases and profiles of this run; removed at the end


def load_rows(
    report: Report, scenario: str, system: str, setting: str, runs: list[dict[str, Any]]
) -> None:
    """Throughput and latency rows from repeated loadgen.js load runs."""
    gen = [r["cpu_pct"] for r in runs]
    srv = [r.get("server_cpu_pct", 0.0) for r in runs]
    errors = sum(sum(r["errors"].values()) + r["timeouts"] for r in runs)
    note = f"({errors} errors)" if errors else ""
    for metric, key, unit, higher in (
        ("throughput", "calls_per_s", "calls/s", True),
        ("latency p50", "p50_ms", "ms", False),
        ("latency p99", "p99_ms", "ms", False),
    ):
        report.add(
            Row(
                scenario,
                system,
                setting,
                metric,
                unit,
                [r[key] for r in runs if r[key] is not None],
                gen,
                srv,
                note if key == "calls_per_s" else "",
                higher,
                [r["core0_busy_pct"] for r in runs if r.get("core0_busy_pct") is not None],
            )
        )
    # A call answered with a CALLERROR or never answered is not a call served: the targets
    # check this row (bench/targets.py), not only the note beside the throughput.
    report.add(
        Row(
            scenario,
            system,
            setting,
            "errors (CALLERROR + timeouts)",
            "calls",
            [float(sum(r["errors"].values()) + r["timeouts"]) for r in runs],
            gen,
            srv,
            "",
            False,
        )
    )
