"""P6, session_lifecycle: many chargers running short charging sessions, one after another.

Each session is Authorize, StatusNotification Preparing, StartTransaction, StatusNotification
Charging, three MeterValues, StopTransaction, StatusNotification Finishing and Available
(bench/node/lifecycle.js). Per database, one run at full rate (every charger starts its next
session when the last ends) and one paced at half the target rate of the "sessions under
load" issue. Rows: sessions/s, p50/p99 per action, the outbox backlog, and what was lost:
after csms stops, rows and events are counted against the acknowledged messages.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backlog import OutboxFigures, watch_outbox
from loadgen import run_sessions
from processes import Database, Server, csms_server, fresh_database, pin_backends
from profiling import hot_functions, py_spy
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "P6"
# Sessions are ~10 calls one after the other: with many more chargers a session outlasts a
# 5 s window once csms is saturated, and completions in the window say little.
CHARGERS = 100
ID_TAG = "BENCH-TAG"
ACTIONS = ("Authorize", "StatusNotification", "StartTransaction", "MeterValues", "StopTransaction")
EVENT_TYPES = (
    "authorization",
    "evse.status",
    "session.started",
    "meter.values",
    "session.updated",
    "session.stopped",
    "cdr.created",
)
# Complete sessions/s the "sessions under load" issue asks for; latency targets at half of it.
TARGET_RATE = {"sqlite": 300, "postgresql": 200}
DRAIN_TIMEOUT_S = 30.0
# What targets.py looks rows up by: the two paces' settings contain FULL or HALF.
FULL, HALF = "full rate", "half rate"
OLDEST = "outbox oldest undelivered max"
EMPTY = "outbox empty after the load"
LOST = "lost (rows + events)"
PER_CPU = "sessions per CPU-second of csms"


@dataclass(frozen=True)
class Pace:
    setting: str  # as the report shows it
    rate: float  # sessions/s in total; 0: as fast as csms answers


def paces(kind: str, chargers: int) -> list[Pace]:
    half = TARGET_RATE[kind] / 2
    return [
        Pace(f"{chargers} chargers, {FULL}", 0),
        Pace(f"{chargers} chargers, {HALF} ({half:g} sessions/s)", half),
    ]


async def session_lifecycle(report: Report, opts: Options) -> None:
    progress("P6 session lifecycle: chargers running whole sessions, SQLite and PostgreSQL")
    for kind in ("sqlite", "postgresql"):
        for pace in paces(kind, CHARGERS):
            runs: list[dict[str, Any]] = []
            for n in range(opts.repeats):
                progress(f"P6 {kind} {pace.setting}, run {n + 1}/{opts.repeats}")
                runs.append(await run_lifecycle(opts, kind, CHARGERS, pace.rate))
            add_rows(report, f"csms + {kind}", pace.setting, runs)
            note_saturation(report, f"{kind} {pace.setting}", pace.rate, runs)


async def run_lifecycle(
    opts: Options, kind: str, chargers: int, rate: float, *, profile: Path | None = None
) -> dict[str, Any]:
    """One run on a fresh database: lifecycle.js's result, the outbox figures and the losses.

    With `profile`, py-spy samples csms over the measured window into that file.
    """
    spy: list[asyncio.Task[None]] = []
    with fresh_database(kind, opts.scratch) as database:
        async with csms_server(database, opts.scratch) as server:
            await register_id_tag(server, ID_TAG)
            async with watch_outbox(database) as watch:

                def on_mark(mark: str) -> None:
                    if mark == "window_start":
                        pin_backends(database, server)
                        watch.window_started()
                        if profile is not None:
                            task = py_spy(server.pid, profile, opts.duration)
                            spy.append(asyncio.create_task(task))
                    elif mark == "load_end":
                        watch.load_ended()

                run = await run_sessions(
                    server,
                    connections=chargers,
                    duration=opts.duration,
                    warmup=opts.warmup,
                    rate=rate,
                    id_tag=ID_TAG,
                    on_mark=on_mark,
                )
                run["outbox"] = await watch.figures(drain_limit_s=DRAIN_TIMEOUT_S)
                for task in spy:
                    await task
        # csms stopped: every acknowledged write is committed. Count what is there.
        run |= count_lost(database, run)
    return run


async def register_id_tag(server: Server, id_tag: str) -> None:
    """An Accepted tag, so Authorize and StartTransaction take the path real sessions take."""
    url = f"http://127.0.0.1:{server.api_port}/api/v1/id-tags/{id_tag}"
    body = json.dumps({"status": "Accepted"}).encode()
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    await asyncio.to_thread(_send, request)


def _send(request: urllib.request.Request) -> None:
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def count_lost(database: Database, run: dict[str, Any]) -> dict[str, Any]:
    """Stored rows and events against what the acknowledged messages promise.

    Returns `expected` (their total), `lost` (the shortfall) and `missing` (by kind).
    """
    acked = {action: run["actions"][action]["acked"] for action in ACTIONS}
    starts = run["transactions"]  # distinct transactionIds answered
    expected = {
        "transactions": starts,
        "stopped transactions": acked["StopTransaction"],
        "meter_values": acked["MeterValues"] * run["samples_per_meter_values"],
        "status_notifications": acked["StatusNotification"],
        # Events (docs/events.md): one per message, two for a start, a
        # MeterValues with an energy register in a transaction, and a stop.
        "authorization events": acked["Authorize"] + starts,
        "evse.status events": acked["StatusNotification"],
        "session.started events": starts,
        "meter.values events": acked["MeterValues"],
        "session.updated events": acked["MeterValues"],
        "session.stopped events": acked["StopTransaction"],
        "cdr.created events": acked["StopTransaction"],
    }
    events = database.count_by("select type, count(*) from outbox_events group by type")
    found = {
        "transactions": database.count("select count(*) from transactions"),
        "stopped transactions": database.count(
            "select count(*) from transactions where stop_timestamp is not null"
        ),
        "meter_values": database.count("select count(*) from meter_values"),
        "status_notifications": database.count("select count(*) from status_notifications"),
        **{f"{kind} events": events.get(kind, 0) for kind in EVENT_TYPES},
    }
    missing = {k: n - found[k] for k, n in expected.items() if found[k] < n}
    return {"expected": sum(expected.values()), "lost": sum(missing.values()), "missing": missing}


def add_rows(report: Report, system: str, setting: str, runs: list[dict[str, Any]]) -> None:
    gen = [r["cpu_pct"] for r in runs]
    srv = [r.get("server_cpu_pct", 0.0) for r in runs]
    core0 = [r["core0_busy_pct"] for r in runs if r.get("core0_busy_pct") is not None]
    report.add(
        Row(
            LABEL,
            system,
            setting,
            "throughput",
            "sessions/s",
            [r["sessions_per_s"] for r in runs],
            gen,
            srv,
            failures_note(runs),
            True,
            core0,
        )
    )
    # What a core would do if csms had it to itself: complete sessions per CPU-second of
    # csms. Steadier than sessions/s on a machine shared with other work (docs/performance.md).
    per_cpu = [r["sessions_per_s"] * 100 / cpu for r, cpu in zip(runs, srv, strict=True) if cpu]
    report.add(Row(LABEL, system, setting, PER_CPU, "sessions/CPU-s", per_cpu, gen, srv))
    for action in ACTIONS:
        for metric, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
            values = [r["actions"][action][key] for r in runs]
            report.add(
                Row(
                    LABEL,
                    system,
                    setting,
                    f"{action} {metric}",
                    "ms",
                    [v for v in values if v is not None],
                    gen,
                    srv,
                    higher_is_better=False,
                )
            )
    add_outbox_rows(report, system, setting, [r["outbox"] for r in runs])
    report.add(
        Row(
            LABEL,
            system,
            setting,
            LOST,
            "",
            [float(r["lost"]) for r in runs],
            note=f"of {sum(r['expected'] for r in runs):,}",
            higher_is_better=False,
        )
    )
    for r in runs:
        if r["lost"]:
            report.notes.append(f"P6 {system} {setting}: missing {r['missing']}")


def add_outbox_rows(report: Report, system: str, setting: str, runs: list[OutboxFigures]) -> None:
    stuck = sum(1 for o in runs if o.drained_s is None)
    for metric, unit, values, note in (
        ("outbox undelivered max", "events", [float(o.max_rows) for o in runs], ""),
        (OLDEST, "s", [o.max_age_s for o in runs], ""),
        (
            EMPTY,
            "s",
            [o.drained_s for o in runs if o.drained_s is not None],
            f"({stuck} not empty after {DRAIN_TIMEOUT_S:g} s)" if stuck else "",
        ),
    ):
        report.add(
            Row(LABEL, system, setting, metric, unit, values, note=note, higher_is_better=False)
        )


def note_saturation(report: Report, what: str, rate: float, runs: list[dict[str, Any]]) -> None:
    """A paced run that fell short of its pace measured csms saturated, not at that rate."""
    done = [r["sessions_per_s"] for r in runs]
    if rate > 0 and done and max(done) < 0.9 * rate:
        report.notes.append(
            f"P6 {what}: csms completed {max(done):.0f} sessions/s at most, short of the "
            f"{rate:g} asked; its latencies are those of a saturated csms"
        )


def profile_notes(report: Report, name: str, raw: Path) -> None:
    """Where a session's CPU time went, by csms function (py-spy, inclusive): the profile
    the "sessions under load" notes compare before and after a change (bench/analysis.md)."""
    # The entry point and the composition root hold every sample, and a chain of callers
    # with one share (the writer's loop) says it once: the first of them is kept.
    lines: list[str] = []
    for line in hot_functions(raw, top=40).get("inclusive", []):
        if "(csms/__main__.py)" in line or "(csms/app.py)" in line:
            continue
        if lines and line.split(" % ")[0] == lines[-1].split(" % ")[0]:
            continue
        lines.append(line)
    lines = lines[:24]
    if lines:
        report.notes.append(f"{name}, hottest csms functions (inclusive): " + "; ".join(lines))


def failures_note(runs: list[dict[str, Any]]) -> str:
    """CALLERRORs, timeouts and sessions that did not complete, if any."""
    errors = sum(a["errors"] + a["timeouts"] for r in runs for a in r["actions"].values())
    failed = sum(r["sessions_failed"] + r["setup_failures"] for r in runs)
    unfinished = sum(1 for r in runs if not r["all_finished"])
    parts = [
        f"{errors} errors" if errors else "",
        f"{failed} failed sessions or setups" if failed else "",
        f"{unfinished} runs with unfinished sessions" if unfinished else "",
    ]
    text = ", ".join(p for p in parts if p)
    return f"({text})" if text else ""
