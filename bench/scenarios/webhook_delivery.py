"""P7, webhooks: deliveries/s to a real local HTTP receiver, and OCPP MeterValues -> webhook
POST latency at the webhooks issue's rate (bench/webhooks.py does the work)."""

from __future__ import annotations

import statistics

from report import Report, Row, progress
from webhooks import run_phase

from scenarios.common import Options

LABEL = "P7"
SYSTEM = "csms + sqlite"
TARGET_RATE = 2000  # deliveries/s, and the rate at which p99 < 200 ms (issue 16)
TARGET_P99_MS = 200
DRAIN_SETTING = "backlog of {:,} events"
RATE_SETTING = f"{TARGET_RATE:,} MeterValues/s offered"


async def webhook_delivery(report: Report, opts: Options) -> None:
    backlog = 5000 if opts.quick else 20_000
    seconds = opts.duration
    drains: list[dict[str, float]] = []
    rates: list[dict[str, float]] = []
    for n in range(opts.repeats):
        progress(f"P7 webhooks: drain {backlog:,}, run {n + 1}/{opts.repeats}")
        drains.append(await run_phase("drain", scratch=opts.scratch, backlog=backlog))
        progress(f"P7 webhooks: {TARGET_RATE}/s for {seconds:g} s, run {n + 1}/{opts.repeats}")
        rates.append(
            await run_phase("rate", scratch=opts.scratch, rate=TARGET_RATE, seconds=seconds)
        )
    drain_rate = statistics.median(r["deliveries_per_s"] for r in drains)
    p99 = statistics.median(r["p99_ms"] for r in rates)
    drain_cpu = [r["runner_cpu_pct"] for r in drains]
    rate_cpu = [r["runner_cpu_pct"] for r in rates]
    drain_srv = [r["server_cpu_pct"] for r in drains]
    rate_srv = [r["server_cpu_pct"] for r in rates]
    lost = [r for r in drains if r["delivered"] < backlog]
    report.add(
        Row(
            LABEL,
            SYSTEM,
            DRAIN_SETTING.format(backlog),
            "webhook deliveries",
            "deliveries/s",
            [r["deliveries_per_s"] for r in drains],
            drain_cpu,
            drain_srv,
            note=f"(target >= {TARGET_RATE:,}: {drain_rate / TARGET_RATE:.2f}x"
            + (f"; {len(lost)} runs incomplete)" if lost else ")"),
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            DRAIN_SETTING.format(backlog),
            "webhook deliveries per csms CPU second",
            "deliveries",
            [r["deliveries_per_cpu_s"] for r in drains],
            drain_cpu,
            drain_srv,
            note="(what a busy machine does not skew)",
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            RATE_SETTING,
            "webhook deliveries",
            "deliveries/s",
            [r["deliveries_per_s"] for r in rates],
            rate_cpu,
            rate_srv,
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            RATE_SETTING,
            "MeterValues actually sent",
            "/s",
            [r.get("offered_per_s", 0.0) for r in rates],
            rate_cpu,
            rate_srv,
            note="(chargers wait for each answer: a loaded csms is offered less)",
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            RATE_SETTING,
            "MeterValues answer p99",
            "ms",
            [r.get("answer_p99_ms", 0.0) for r in rates],
            rate_cpu,
            rate_srv,
            higher_is_better=False,
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            RATE_SETTING,
            "webhooks not delivered",
            "",
            [r["sent"] - r["delivered"] for r in rates],
            rate_cpu,
            rate_srv,
            higher_is_better=False,
        )
    )
    load = statistics.median(r.get("load_average", 0.0) for r in rates)
    wait = statistics.median(r.get("server_wait_pct", 0.0) for r in rates)
    offered = statistics.median(r.get("offered_per_s", 0.0) for r in rates)
    for metric, key in (("OCPP -> webhook p50", "p50_ms"), ("OCPP -> webhook p99", "p99_ms")):
        note = (
            f"(target < {TARGET_P99_MS} ms: {p99 / TARGET_P99_MS:.2f}x; {offered:,.0f}/s "
            f"actually sent; load average {load:.1f}, csms waited for a CPU {wait:.0f} % "
            "of the time)"
            if key == "p99_ms"
            else ""
        )
        report.add(
            Row(
                LABEL,
                SYSTEM,
                RATE_SETTING,
                metric,
                "ms",
                [r[key] for r in rates],
                rate_cpu,
                rate_srv,
                note=note,
                higher_is_better=False,
            )
        )
