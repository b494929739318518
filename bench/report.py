"""Results of a bench run: progress lines, rows, their formatting and the markdown table."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field

GENERATOR_LIMIT = 80.0  # % of the generator's core above which a result is invalid


def progress(message: str) -> None:
    """A timestamped line on stderr; stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One figure of one scenario, over its repeats."""

    scenario: str
    system: str
    setting: str
    metric: str
    unit: str
    values: list[float]
    generator_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    note: str = ""
    higher_is_better: bool = True
    core0_busy: list[float] = field(default_factory=list)  # the server's core, all processes

    @property
    def valid(self) -> bool:
        return all(c <= GENERATOR_LIMIT for c in self.generator_cpu)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclass
class Report:
    """Everything a run found: rows, profiles and notes, in the order they came."""

    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        progress(f"  -> {row.system} {row.setting} {row.metric}: {fmt_values(row)}")
        return row

    def find(self, scenario: str, system: str, setting: str, metric: str) -> Row | None:
        for row in self.rows:
            if (row.scenario, row.system, row.setting, row.metric) == (
                scenario,
                system,
                setting,
                metric,
            ):
                return row
        return None


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("calls/s", "events/s"):
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def fmt_values(row: Row) -> str:
    if not row.values:
        return "-"
    if len(row.values) == 1:
        return fmt(row.values[0], row.unit)
    low, high = fmt(min(row.values), row.unit), fmt(max(row.values), row.unit)
    return f"{fmt(row.median, row.unit)} [{low}-{high}]"


def fmt_cpu(values: list[float]) -> str:
    return f"{max(values):.0f} %" if values else "-"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | system | setting | metric | median [min-max] | gen. CPU (max) "
        "| server CPU | valid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        valid = "yes" if r.valid else "**INVALID** (generator > 80 %)"
        metric = f"{r.metric} ({r.unit})" if r.unit else r.metric
        note = f" {r.note}" if r.note else ""
        lines.append(
            f"| {r.scenario} | {r.system} | {r.setting} | {metric} | {fmt_values(r)}{note} "
            f"| {fmt_cpu(r.generator_cpu)} | {fmt_cpu(r.server_cpu)} | {valid} |"
        )
    return "\n".join(lines)
