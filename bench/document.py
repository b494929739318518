"""docs/performance.md: the machine, how it was measured, the table, targets and limits."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

from processes import NODE_DIR, PG_HOST, ROOT
from profiling import CATEGORIES, OTHER
from report import Report, markdown_table
from scenarios import Options
from targets import limits, targets

# The reading of the figures changes less often than the figures: kept by hand.
ANALYSIS = Path(__file__).with_name("analysis.md")

PYTHON_PACKAGES = (
    "websockets",
    "picows",
    "uvloop",
    "orjson",
    "jsonschema-rs",
    "ocpp",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
)
NODE_PACKAGES = ("ws", "ocpp-rpc", "bufferutil")

HOW_IT_WAS_MEASURED = [
    "- Scenario labels and `--only` names: P1 `protocol_path`, P2 `persisted_path`, P3",
    "  `idle_memory`, `boot_storm` and `secured_storm`, P4 `command_round_trip`, P5",
    "  `event_latency` and `outbox_drain`, P6 `session_lifecycle`, P7 `webhook_delivery`,",
    "  P8 `allocation`, C1 `cluster_scaleout`, C2 `cluster_reconnect`, H1 `api_load`, H2",
    "  `poison_mix`,",
    "  PROFILE `cpu_profile`.",
    "- The server under test runs pinned to core 0 (`taskset -c 0`); the load generator,",
    "  `node bench/node/loadgen.js` (the `ws` package), the runner and py-spy on core 1;",
    "  loopback only. A result whose generator used more than 80 % of its core is invalid.",
    "- Load: N connections, each with one CALL outstanding, alternating a MeterValues",
    "  (one meterValue, four sampledValues: energy, power, current, voltage) and a",
    "  Heartbeat; each connection sends BootNotification first (and in P2/P4",
    "  StartTransaction, so meter values belong to a transaction and `session.updated` is",
    "  emitted). Latency is from sending a CALL to receiving its answer, at the generator.",
    "- P1 servers: `bench/servers/csms_protocol.py` (csms's own `ChargerConnection` loop,",
    "  `RpcSession`, schema validation and WebSocket settings; handlers that store",
    "  nothing), on websockets and, as `csms picows`, on the picows transport",
    "  (`--transport picows`), `bench/servers/raw_websockets.py`, `bench/servers/raw_picows.py`,",
    "  `bench/servers/ocpp_chargepoint.py` (`ocpp.v16.ChargePoint`),",
    "  `bench/node/ocpp_rpc_server.js` (`ocpp-rpc` RPCServer, `strictMode: true`). The",
    "  Python servers use uvloop when it is installed (it is, with `.[bench]`).",
    "- P2/P4/P6: `csms serve --config <empty toml>` with `ocpp.transport = auto`, which is",
    "  picows with `.[bench]` installed; P3 runs `csms serve` on each transport",
    "  (`CSMS_OCPP__TRANSPORT`).",
    "- P2/P3/P4/P6: `csms serve --config <empty toml>` with `CSMS_DATABASE__URL` (a fresh",
    "  SQLite file or a fresh PostgreSQL database per run), `CSMS_MQTT__URL` Mosquitto with",
    "  a topic prefix of its own, `CSMS_LOG__LEVEL=warning`. After each P2 run csms is",
    "  stopped (it flushes) and `meter_values` rows and `meter.values` + `session.updated`",
    "  outbox rows are counted against the acknowledged MeterValues.",
    "- P3: RSS from /proc after 200 warm-up chargers came and went, before and 3 s after N",
    "  chargers connected and booted (500 at a time); the boot storm opens every",
    "  connection at once and times until the last BootNotification is Accepted.",
    "- P3 secured storm: 10,000 chargers registered through the API at security profile 1",
    "  with an AuthorizationKey each (40 hex digits, kept as an HMAC-SHA256 with the",
    "  pepper); csms restarted on that database (nothing cached); every charger connects at",
    "  once with HTTP Basic (the key's raw bytes) and boots; timed until the last is",
    "  Accepted, with csms's CPU seconds for it. The first run is sampled by py-spy.",
    "- P4: `POST /api/v1/charge-points/{id}/commands/GetConfiguration` one after the other",
    "  (5 ms apart), the chargers answer at once; idle, then while P2's load runs at 50 %.",
    "- P5: `bench/events.py`: MeterValues one at a time from one charger to its",
    "  `meter.values` event on a Mosquitto subscriber; outbox drain of a 100,000-event",
    "  backlog (rate from the first event received to the last).",
    "- P6: `node bench/node/lifecycle.js`: 100 chargers each run short sessions one after",
    "  the other (Authorize, StatusNotification Preparing, StartTransaction, Charging, 3",
    "  MeterValues, StopTransaction, Finishing, Available; an Accepted id tag). Full rate:",
    "  a charger starts its next session when the last ends; half rate: starts paced to half",
    "  the target (150/s SQLite, 100/s PostgreSQL). sessions/s counts sessions completed in",
    "  the window. The runner polls the outbox every 100 ms for undelivered rows and the",
    "  oldest one's age, and times it to empty after the last session. After csms stops,",
    "  transactions, meter values, status notifications and each event type are counted",
    "  against the acknowledged messages. sessions per CPU-second of csms is sessions/s",
    "  divided by csms's share of a core: what one core of its own would give, steadier",
    "  than sessions/s when other work shares core 0.",
    "- csms-sim reproduces P6 at scale: `simulators/scenarios/lifecycle.toml`",
    "  (docs/simulator.md).",
    "- P7: `bench/webhooks.py`, csms on a fresh SQLite file, a webhook subscription to",
    "  `meter.values` on a keep-alive HTTP/1.1 receiver in the runner (answers 200 at once).",
    "  Backlog: the events are written to the outbox before csms starts; deliveries/s from",
    "  the first POST to the last, and per CPU second of csms. Rate: 100 chargers send",
    "  MeterValues at 2,000/s in total; each POST is matched to its MeterValues by the",
    "  sampled value and timed from sending it. The generator's CPU column is the runner's",
    "  (receiver and chargers).",
    "- P8: `bench/allocation.py`: CPU time (process time) of one allocation pass and of",
    "  the invariant check for 1,000 connectors in a three-level tree (a site, 10 feeders,",
    "  100 sub-boards), beside an EVerest-style 0.5 A-slice allocator on the same",
    "  snapshot; and the profiles per connector per hour that the allocator and the",
    "  balancer's sending rules give over a simulated commuter day (20 connectors, a pass",
    "  every minute and on every arrival and departure).",
    "- C1: `bench/cluster.py` (PostgreSQL and Mosquitto on 127.0.0.1, else skipped): one",
    "  `csms serve` on a fresh PostgreSQL database, 200 chargers sending MeterValues in a",
    "  closed loop, standalone then in cluster mode (a one-node cluster: ownership rows, the",
    "  partitioned QoS 2 relay, heartbeats), alternated per repeat; the ratio per repeat, of",
    "  messages per second and of messages per CPU second of csms.",
    "  Forwarded command: two nodes, the charger on n1 answering at once; 500 ClearCache",
    "  through n1's API (local) and 500 through n2's (forwarded over Mosquitto), alternated",
    "  one by one after 20 of each as warm-up.",
    "- C2: `bench/cluster.py` too: three cluster nodes (lease 2 s, heartbeat 0.5 s) on",
    "  core 0, two HAProxy processes (deploy/haproxy.cfg; a process may open 20,000 files",
    "  here, two per proxied charger) each in front of 5,000 idle `csms-sim` chargers",
    "  (reconnect back-off capped at 5 s); SIGKILL of the node holding the most; seconds",
    "  until `GET /api/v1/cluster` shows the survivors holding all 10,000 (a reconnecting",
    "  charger that did not restart sends no BootNotification: held is connected and",
    "  recorded). `python bench/cluster.py` also measures the write-volume phase.",
    "- H1 (`bench/scenarios/hostile.py`): 200 new chargers one after the other, each",
    "  BootNotification + Heartbeat timed, alone and while 50 Python API clients poll",
    "  `GET /api/v1/charge-points?limit=50` once a second each; the API has its own thread",
    "  and loop. H2: 20 healthy chargers send MeterValues as fast as answered, alone and",
    "  beside 4 chargers sending poison (NUL, 2^31, 1e400 registers, 40-deep nesting,",
    "  70 KB DataTransfer, Stops with 2^40 ids) at 28 messages/s in all; the cost is the",
    "  healthy throughput lost. Both use Python clients from the runner's core.",
]

# Issue 20 §3, the persisted path: each step measured on its own, kept by hand (the figures
# come from runs on a shared machine, not from this run; say how each was measured).
P2_STEPS = [
    "The P2 target (issue 20): >= 2x the calls/s of the run the issue was filed from",
    "(2026-11-22, 100 connections: SQLite 5,362, PostgreSQL 4,266 calls/s), nothing lost,",
    "p99 < 50 ms at 100 connections; the Targets table above checks it. Each step below was",
    "measured alone with `python bench/persisted_inprocess.py` (P2's load in-process: 100",
    "chargers alternating MeterValues and Heartbeat through the application layer, the",
    "writer and the relay publishing to Mosquitto; CPU per call of csms and of the",
    "database's backends, steadier than calls/s on a shared machine), the code before and",
    "after the step run alternately (A B A B), on the shared 2-core machine (load average",
    "in the row). Medians.",
    "",
    "| step | measured |",
    "|---|---|",
    "| PostgreSQL: a batch's samples, register updates, outbox events and last-seen times "
    "as one statement per table (`unnest` of one array per column, `store/db.py` "
    "`set_form`) instead of an executemany, which the server runs row by row | database "
    "CPU per call 264 -> 149 µs, csms 279 -> 262 µs: 543 -> 411 µs per call in all (1.32x "
    "calls per CPU-second); 3 runs each, load 7-10 |",
    "| The relay's delivered-mark: one statement text for any number of ids (PostgreSQL "
    "`= ANY(array)`, SQLite `IN json_each`), prepared once instead of parsed and planned "
    "for each IN-list length | within the noise: PostgreSQL 326 -> 298 µs csms, 190 -> 181 µs "
    "database; SQLite 345 -> 333 µs (2 runs each, load 5-6) |",
    "| The relay's reads on a PostgreSQL connection not pinged before each pass (asyncpg's "
    "pre-ping is BEGIN, a query and ROLLBACK: 6 % of csms's CPU in P2's profile); a read "
    "that meets a dropped connection runs again on a new one | not measurable at load "
    "12-14 (csms 311 -> 298 µs, "
    "database 326 -> 310 µs, 3 runs each, spread ±30 %) |",
    "| SQLite: the WAL checkpoint every 100 commits runs on a connection and thread of its "
    "own while the writer goes on (it took 300-700 ms of wall time under load, every "
    "charger waiting on the writer meanwhile) | writer batch p50 17 -> 11-13 ms; the P2 "
    "p99 in-process (load 6-8) did not move out of the noise (2-3 runs each) |",
    "| The relay yields to the event loop every 100 events it encodes and sends: a pass "
    "of 2,000 (the relay is behind under P2's load: every pass was full in-process) held "
    "the loop for 37 ms (p50) to 158 ms (max) under load, every charger's answer waiting "
    "| the longest hold is now a twentieth of a pass; the P2 p99 in-process (load 5-9) "
    "stayed within the machine's noise: 3 runs each, p99/p50 5.9-6.3 -> 5.5-5.7 |",
    "| The outbox insert names `relay_state` (0) instead of leaving it to the column's "
    "Python-side default, which SQLAlchemy computes per row (insert_prefetch) and which "
    "had put the insert back on SQLAlchemy's own executemany since cluster mode added the "
    "column: on PostgreSQL its `unnest` set form was not used, on SQLite the compiled "
    "driver SQL was not (2026-12-07, evening) | per event row, 200-row batches: "
    "PostgreSQL csms 15.6 -> 9.3 µs, backend 20 -> 15 µs (3 runs each); SQLite, P2 "
    "in-process, the insert's thread CPU 25.8-28.3 -> 17.6-19.5 µs a row (3 runs each). "
    "Whole call in-process, load 6-8: SQLite 208-226 (median 220) -> 196-223 (208) µs, "
    "PostgreSQL 284-339 (286) -> 277-333 (281) µs with the database (3 runs each) |",
    "| The MQTT publisher takes the PUBACKs that arrive back to back in one pass, and "
    "observes the PUBLISH-to-PUBACK time when the PUBACK comes instead of through a "
    "done-callback per publish (2026-12-07, evening) | the relay's publish path (2,000 "
    "events encoded, published to Mosquitto and acknowledged; process CPU per event, "
    "median of 22 passes): 12.8-13.3 -> 9.6-11.7 µs, 3 runs each; about 1 % of a P2 call, "
    "below the in-process run's noise |",
    "| SQLite: a batch's samples as one multi-row VALUES per chunk of 64, 16, 4 or 1 rows "
    "(a CTE `r`, each row's transaction linked once), instead of the executemany "
    "(2026-12-07, evening; reverted) | no gain: P2 in-process, the insert's thread CPU "
    "14.1-16.0 µs a row before, 16.3-18.6 after (3 runs each); alone with sqlite3, 200-row "
    "batches, 12.3-13.9 -> 11.4-13.5 µs (with or without its ORDER BY). A sample row's "
    "cost is SQLite's insert into the table and two indexes (the unique sample key "
    "among them), not the per-row binding |",
    "| PostgreSQL: COPY (`copy_records_to_table` on the writer's asyncpg connection) for "
    "the outbox's events, against their `unnest` insert (2026-12-07, evening; measured "
    "alone, not taken) | csms 8.3-9.9 -> 5.2-6.5 µs per event row, backend 12.5-15 -> "
    "10-15 µs (5 runs each, 200-row batches): about 1 % of a call, for a second write "
    "path whose errors come from asyncpg, not SQLAlchemy (the writer tells an outage "
    "from a bad job by the latter) |",
    "| session.updated's OCPI Session written directly as JSON in `build_session`'s key "
    "order (no `ocpi_json` walk of a built dict; the CDR token and derived EVSE uid kept "
    "per session in bounded caches; `last_updated` through `format_utc`'s second cache), "
    "meter.values' timestamps formatted in one pass (2026-12-07, night); byte-identical "
    "events, key order included (tests/events/test_build.py compares them with the "
    "generic builder) | csms CPU per call, 5 interleaved pairs, load 5-6: SQLite 174 -> "
    "144 µs, PostgreSQL 136 -> 127 µs (database 89 -> 86 µs, unchanged); a MeterValues' "
    "session.updated 13.9 -> 7.4 µs alone. Not kept (no gain in 4-5 pairs): batched "
    "`os.urandom` for event ids, a cheaper copy of `SessionFacts` |",
    "| PostgreSQL: the delivered-mark as a HOT update (measured, not taken) | impossible "
    "on PostgreSQL 15 while an index names `delivered_at` (the cluster relay's partial "
    "index has it in its condition). A partial `(id) WHERE delivered_at IS NULL` pending "
    "index instead of `(delivered_at, id)` saved the database 77 -> 74 µs per call (7 "
    "pairs, about 1.5 % of csms plus database) and would need prune to change; dropping "
    "both indexes with fillfactor 60 made 80 % of the marks HOT but left the pending "
    "read without an index (database 88 -> 116 µs) |",
    "| `csms serve`, once ready, freezes the objects start-up made out of the garbage "
    "collector's sight and raises its youngest generation's threshold from 700 to 10,000 "
    "(`csms.app.settle_collector`; only the imports were frozen before): a full "
    "collection ran every half second under P2's load, walking the application's "
    "objects on the event loop's thread (2026-12-07, late) | in-process, 3 interleaved "
    "pairs each, load 5-10: SQLite collector pauses 5.9-7.6 % of the wall time, longest "
    "44-61 ms -> 0.1-1.1 %, 3-14 ms; csms CPU per call median 128 -> 117 µs; p99 "
    "72/83/104 -> 69/52/74 ms. PostgreSQL pauses 3.2-4.7 %, longest 62-73 ms -> none in "
    "the window; csms CPU per call median 116 -> 102 µs (database 85-115 -> 89-112 µs); "
    "p99 118/187/164 -> 113/134/129 ms. `csms serve` under P2's load (100 connections, 6 s, "
    "6 interleaved pairs each against the code before, csms at 25-61 % of core 0 beside "
    "other runs): csms CPU per call SQLite median 212 -> 198 µs (5 pairs of 6 lower), "
    "p99 median 303 -> 174 ms; PostgreSQL 309 -> 279 µs (5 of 6 lower), p99 within the "
    "noise (median 181 -> 219 ms, two runs past 1 s). Nothing lost |",
    "| PostgreSQL: the relay's delivered-mark in a transaction of its own beside the "
    "writer's batches instead of in one (it rode in one batch in four, 7-10 ms p50 of "
    "it; 2026-12-07, late; reverted) | no gain: in-process, 6 interleaved pairs, load "
    "6-7: p50 median 35 -> 30 ms, p99 mixed (77/95/99/103/142/148 -> "
    "71/79/103/115/151/171 ms), CPU unchanged (csms 85-101 -> 79-106 µs); the batches "
    "did not get shorter and the mark, on a pinged pool connection, got longer (p50 "
    "7-10 -> 14 ms) |",
    "| SQLite: a WAL checkpoint every 500 writer commits instead of 100 (the commit after "
    "a checkpoint waits on aiosqlite's thread, 7-19 ms p50, and holds every charger of one "
    "cycle in 100: the p99's share; 2026-12-07, late; not kept) | no gain: in-process, 4 "
    "interleaved pairs, load 4-5: p99 69/65/61/56 -> 60/78/73/71 ms, csms CPU per call "
    "133-146 -> 129-167 µs |",
    "",
    "The whole branch against the code before it, `csms serve` under P2's load (100",
    "connections, 8 s; interleaved pairs, load 6-12, csms and its backends had 18-82 % of",
    "core 0, so calls/s swung 5x between pairs): calls per CPU-second of csms and its",
    "database backends, ratio per pair, PostgreSQL 1.29, 1.43, 0.94, 1.32, 1.28, 0.83",
    "(median 1.28x; calls/s 1.17x), SQLite 0.92, 1.25, 1.06, 0.96 (no change: its steps",
    "are the checkpoint and the relay's). Nothing lost in any run. The P2 target (2x calls/s",
    "on one core, p99 < 50 ms) is not reached by these steps; a quiet machine's `make bench`",
    "says where they leave it.",
    "",
    "Not done yet: COPY for the samples (their transaction link is decided in SQL, so a",
    "COPY would go to a temporary table and an INSERT ... SELECT from it); committing batch",
    "N+1 while N commits (at 100 connections every batch holds all 100 chargers, so it has",
    "nothing to overlap there: bench/analysis.md, P2's p99); the relay in a process of its",
    "own; the outbox's delivered-mark, an UPDATE that writes a new version of every event",
    "row (its JSON included) and of its index entries (bench/analysis.md, P2, 2026-12-07",
    "evening; in-process it does not set P2's p99 yet: bench/analysis.md, P2's p99).",
]

PROFILE_INTRO = [
    "py-spy samples csms for the measured window (200 Hz, from core 1); each sample is",
    "given to the innermost frame that belongs to a layer: WebSocket layer",
    "(`websockets`, or picows and `transport_picows.py`), parsing + validation",
    "(`rpc.py`, `schemas.py`: orjson and jsonschema-rs are native and count to their",
    "caller), handlers (`handlers.py`,",
    "`connection.py`, `csms/core`), storage (`csms/store`, SQLAlchemy, the drivers),",
    "events (`csms/events`, pydantic, aiomqtt), logging; the rest is the event loop,",
    "socket I/O and asyncio's task switching. Under uvloop a sample taken while uvloop's",
    "C code runs may carry the last Python frame that ran, often a comprehension that has",
    "already returned: read single hot lines with that in mind.",
]


def run_text(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> list[str]:
    """The machine, the versions that matter and the commit, as markdown list items."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    lscpu = {}
    for line in run_text(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    versions = []
    for package in PYTHON_PACKAGES:
        with contextlib.suppress(Exception):
            versions.append(f"{package} {version(package)}")
    node_versions = []
    for package in NODE_PACKAGES:
        with contextlib.suppress(Exception):
            meta = json.loads((NODE_DIR / "node_modules" / package / "package.json").read_text())
            node_versions.append(f"{package} {meta['version']}")
    pg = run_text(["psql", "-h", PG_HOST, "-U", "postgres", "-Atc", "show server_version"])
    mosquitto = run_text(["sh", "-c", "mosquitto -h 2>/dev/null | head -1"])
    return [
        f"- CPU: {model}, {os.cpu_count()} cores ({lscpu.get('Thread(s) per core', '?')} "
        f"thread(s) per core), {lscpu.get('Hypervisor vendor', 'no')} hypervisor",
        f"- memory: {int(mem) / 1024 / 1024:.1f} GiB; kernel {platform.release()}",
        f"- Python {platform.python_version()}: {', '.join(versions)}",
        f"- Node {run_text(['node', '--version'])}: {', '.join(node_versions)}",
        f"- PostgreSQL {pg or '?'} (unpinned server; our database's backends pinned to core 0 "
        f"during P2 and P6), {mosquitto or 'Mosquitto'} on 127.0.0.1:1883 (unpinned)",
        f"- csms commit {run_text(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
    ]


def document(report: Report, opts: Options, argv: list[str], elapsed: float) -> str:
    """The whole of docs/performance.md for this run."""
    out = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run.py`); do not edit by hand, run it again.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## How it was measured",
        "",
        f"`python bench/run.py {' '.join(argv)}`".replace("  ", " ").replace(" `", "`"),
        f"({opts.repeats} repeat(s) of every scenario, {opts.warmup:g} s warm-up and "
        f"{opts.duration:g} s measured per load run; the whole run took {elapsed / 60:.1f} min).",
        "",
        *HOW_IT_WAS_MEASURED,
        "",
        "## Results",
        "",
        "Median [min-max] over the repeats; CPU is % of one core over the measured window.",
        "",
        markdown_table(report.rows),
        "",
        *targets_table(report),
        "",
        "### P2 steps (issue 20 §3)",
        "",
        *P2_STEPS,
        "",
        "## What limits each figure",
        "",
        *limits(report),
        "",
        *profile_section(report),
    ]
    if ANALYSIS.exists():
        out += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    if report.notes:
        out += ["## Notes from this run", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(out) + "\n"


def targets_table(report: Report) -> list[str]:
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, shown, _, met in targets(report):
        verdict = {True: "yes", False: "**no**", None: "-"}[met]
        lines.append(f"| {name} | {shown} | {verdict} |")
    return lines


def profile_section(report: Report) -> list[str]:
    """The py-spy shares per layer, or nothing when no profile was taken."""
    if not report.profiles:
        return []
    cats = [c for c, _ in CATEGORIES] + [OTHER]
    lines = [
        "### Where a call's CPU time goes (py-spy)",
        "",
        *PROFILE_INTRO,
        "",
        "| run | " + " | ".join(cats) + " |",
        "|---|" + "---|" * len(cats),
    ]
    for name, shares in report.profiles.items():
        lines.append(f"| {name} | " + " | ".join(f"{shares.get(c, 0):.0f} %" for c in cats) + " |")
    lines.append("")
    return lines
