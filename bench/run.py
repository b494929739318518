"""`make bench`: csms's capacity figures beside three references, on one machine.

    python bench/run.py [--quick] [--only protocol_path,idle_memory] [--repeats 3] [--duration 8]

The server under test runs pinned to core 0 (`taskset -c 0`), the load generator (Node +
`ws`, bench/node/loadgen.js) and this runner on core 1, over loopback. Every scenario is
repeated (--repeats) and reported as median [min-max]; a result whose generator used more
than 80 % of its core is marked invalid. Progress goes to stderr, the markdown table to
stdout, and the whole report to docs/performance.md (--output). See docs/performance.md.

--quick: protocol_path at 100 connections for csms (on both transports) and both raw
ceilings, persisted_path SQLite at 100, command_round_trip idle, event_latency and
session_lifecycle, 1 repeat of 5 s each: about 2 minutes, figures only roughly comparable.

The code: processes.py (pinning, /proc, servers, databases), loadgen.py (the load
generators), backlog.py (the outbox watcher), scenarios/ (one module per scenario),
profiling.py (py-spy), report.py, targets.py and document.py (the table, the targets,
docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from document import document
from processes import GENERATOR_CORE, NODE_DIR, ROOT, cancel_drains
from report import Report, markdown_table, progress
from scenarios import SCENARIOS, Options, Scenario, describe, resolve
from targets import targets


def raise_fd_limit(wanted: int = 200_000) -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check_setup() -> None:
    if not (NODE_DIR / "node_modules" / "ws").exists():
        raise SystemExit("bench/node/node_modules is missing: run `make bench-deps` first")
    for module in ("picows", "uvloop"):
        try:
            __import__(module)
        except ImportError:
            raise SystemExit(f"{module} is missing: pip install -e '.[bench]'") from None


def parse_arguments() -> tuple[argparse.Namespace, list[Scenario]]:
    intro, *rest = __doc__.split("\n\n")
    scenarios = (
        "Scenarios (--only takes a name or, as before, its label: P1..P6 and PROFILE;\n"
        "P3 stands for idle_memory and boot_storm, P5 for event_latency and outbox_drain):\n"
        + describe()
    )
    parser = argparse.ArgumentParser(
        description=intro,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join([rest[0], scenarios, *rest[1:]]),
    )
    parser.add_argument("--quick", action="store_true", help="a 2-minute subset, 1 repeat")
    parser.add_argument("--repeats", type=int, help="runs per scenario (default 3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="measured seconds per load run (default 8)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per load run (default 2)")
    parser.add_argument(
        "--only",
        help="comma-separated scenarios, by name or label (P1..P6, PROFILE): see below",
    )
    parser.add_argument(
        "--output",
        default=str(ROOT / "docs" / "performance.md"),
        help="where the report goes ('-' for nowhere)",
    )
    args = parser.parse_args()
    if args.only:
        try:
            chosen = resolve([s.strip() for s in args.only.split(",")])
        except ValueError as exc:
            parser.error(f"unknown scenarios: {exc}")
    else:
        chosen = resolve([s.name for s in all_scenarios(quick=args.quick)])
    return args, chosen


def all_scenarios(*, quick: bool) -> list[Scenario]:
    return [s for s in SCENARIOS if s.quick or not quick]


async def run_scenarios(chosen: list[Scenario], report: Report, opts: Options) -> None:
    for scenario in chosen:
        try:
            await scenario.run(report, opts)
        except Exception as exc:  # one broken scenario must not lose the others
            progress(f"{scenario.name} failed: {exc!r}")
            report.notes.append(f"{scenario.label} {scenario.name} failed: {exc!r}")


def print_summary(report: Report) -> None:
    print(markdown_table(report.rows))
    print()
    for name, shown, _, met in targets(report):
        if met is not None or "information" in name:
            print(f"- {name}: {shown} {'' if met is None else ('met' if met else 'MISSED')}")


async def main() -> int:
    args, chosen = parse_arguments()
    check_setup()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {int(GENERATOR_CORE)})
    limit = raise_fd_limit()
    progress(f"file-descriptor limit {limit}; scenarios {','.join(s.name for s in chosen)}")
    started = time.perf_counter()
    report = Report()
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as scratch:
        opts = Options(
            repeats=args.repeats or (1 if args.quick else 3),
            duration=args.duration or (5 if args.quick else 8),
            warmup=args.warmup or (1 if args.quick else 2),
            quick=args.quick,
            scratch=Path(scratch),
        )
        if limit < 21_000 and any(s.name == "idle_memory" for s in chosen) and not args.quick:
            report.notes.append(f"file-descriptor limit {limit}: 20,000 connections may fail")
        await run_scenarios(chosen, report, opts)
    elapsed = time.perf_counter() - started
    print_summary(report)
    if args.output != "-":
        text = document(report, opts, sys.argv[1:], elapsed)
        await asyncio.to_thread(Path(args.output).write_text, text)
        progress(f"wrote {args.output} ({elapsed / 60:.1f} min)")
    cancel_drains()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
