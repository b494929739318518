"""``csms-sim``: run a fleet of simulated OCPP 1.6J chargers against a central system."""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson

from .charger import make_ssl_context
from .fleet import Fleet, Progress, ProgressMode
from .scenario import Scenario, ScenarioError, parse_duration, shipped_scenarios

EPILOG = textwrap.dedent(
    """\
    scenarios (--scenario takes a file path or the name of a shipped one):
    {scenarios}

    Scenario files are TOML; see simulators/scenarios/*.toml for every key, commented.
    Times in a scenario are simulated; --speed (or the file's `speed`) says how many
    simulated seconds pass per real second, so `--speed 3600` plays an hour per second.
    --duration is real (wall-clock) time: 90, 90s, 10m, 1h30m.

    The run ends at --duration, at the scenario's own `duration`, when every charger has
    played its script (--until-done), or on SIGINT/SIGTERM. Open sessions are then stopped
    cleanly (reason Local) and queued transaction messages drained before the summary.
    Exit status: 0 when no protocol error, CALLERROR or timeout occurred, 1 otherwise,
    2 for bad arguments.

    example (a five-minute tour against a local CSMS):
      csms-sim run --url ws://127.0.0.1:9000/ocpp --chargers 3 \\
          --scenario simulators/scenarios/commute.toml --until-done --summary summary.json
    """
)


def _scenario_lines() -> str:
    lines = []
    for path in shipped_scenarios():
        try:
            description = Scenario.load(path).description.split("\n", 1)[0]
        except ScenarioError as exc:
            description = f"(broken: {exc})"
        lines.append(f"  {path.stem:<12} {description}")
    return "\n".join(lines) or "  (none shipped)"


def _duration(text: str) -> float:
    try:
        return parse_duration(text, "--duration")
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="csms-sim",
        description="Simulated OCPP 1.6J chargers for load, soak and behaviour tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a fleet of simulated chargers",
        description="Run simulated chargers that connect to {url}/{identity} with "
        "subprotocol ocpp1.6 and follow a scenario.",
        epilog=EPILOG.format(scenarios=_scenario_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = run.add_argument_group("target")
    target.add_argument(
        "--url", required=True, help="central system base URL, e.g. ws://127.0.0.1:9000/ocpp"
    )
    target.add_argument(
        "--password",
        help="basic-auth password (security profiles 1 and 2): 32-40 hex digits are an "
        "AuthorizationKey, sent as its raw bytes; anything else is sent as text",
    )
    target.add_argument("--ca-file", help="CA bundle to trust for wss:// (default: system store)")
    target.add_argument("--cert-file", help="client certificate for wss:// (security profile 3)")
    target.add_argument("--key-file", help="private key of --cert-file")

    fleet = run.add_argument_group("fleet")
    fleet.add_argument("--chargers", type=_positive_int, default=1, help="how many (default 1)")
    fleet.add_argument(
        "--connectors", type=_positive_int, default=2, help="connectors each (default 2)"
    )
    fleet.add_argument(
        "--identity-pattern",
        default="SIM-{n:05d}",
        help="charge point identity, n counts from --first (default SIM-{n:05d})",
    )
    fleet.add_argument("--first", type=int, default=1, help="first n (default 1)")
    fleet.add_argument("--vendor", help="chargePointVendor (default from the scenario)")
    fleet.add_argument("--model", help="chargePointModel (default from the scenario)")
    fleet.add_argument("--firmware", help="firmwareVersion (default from the scenario)")
    fleet.add_argument(
        "--serial-pattern",
        help="serial number pattern with {n} and {identity} (default SN-{n:08d})",
    )

    behaviour = run.add_argument_group("scenario and run")
    behaviour.add_argument(
        "--scenario", default="idle", help="scenario file or shipped name (default idle)"
    )
    behaviour.add_argument(
        "--speed", type=float, help="simulated seconds per real second (default from scenario)"
    )
    behaviour.add_argument("--seed", type=int, help="random seed (default from scenario)")
    behaviour.add_argument("--duration", type=_duration, help="stop after this real time")
    behaviour.add_argument(
        "--until-done", action="store_true", help="stop once every charger played its script"
    )
    behaviour.add_argument(
        "--call-timeout", type=float, default=30.0, help="seconds to wait for an answer (30)"
    )
    behaviour.add_argument(
        "--open-timeout", type=float, default=10.0, help="seconds to open a connection (10)"
    )
    behaviour.add_argument(
        "--reconnect-cap", type=float, default=30.0, help="reconnect backoff cap in seconds (30)"
    )
    behaviour.add_argument(
        "--validate-outbound",
        action="store_true",
        help="check every payload sent against the 1.6 schemas (costs CPU)",
    )

    output = run.add_argument_group("output")
    output.add_argument("--summary", type=Path, help="write the JSON summary to this file")
    output.add_argument(
        "--progress",
        choices=[m.value for m in ProgressMode],
        default="auto",
        help="live line on a terminal, plain periodic lines otherwise (default auto)",
    )
    output.add_argument(
        "--progress-interval", type=float, help="seconds between updates (0.5 live, 10 plain)"
    )

    commands.add_parser("scenarios", help="list the shipped scenarios")
    return parser


def raise_fd_limit(chargers: int) -> int:
    """Raise the soft open-files limit for one socket per charger; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = chargers + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def _run(args: argparse.Namespace, scenario: Scenario, progress: Progress) -> dict[str, Any]:
    ssl_context = None
    if args.url.startswith("wss://"):
        ssl_context = make_ssl_context(args.ca_file, args.cert_file, args.key_file)
    fleet = Fleet(
        args.url,
        scenario,
        chargers=args.chargers,
        connectors=args.connectors,
        identity_pattern=args.identity_pattern,
        first=args.first,
        vendor=args.vendor,
        model=args.model,
        firmware=args.firmware,
        serial_pattern=args.serial_pattern,
        password=args.password,
        ssl=ssl_context,
        speed=args.speed,
        call_timeout=args.call_timeout,
        open_timeout=args.open_timeout,
        reconnect_cap=args.reconnect_cap,
        validate_outbound=args.validate_outbound,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fleet.stop)
    try:
        return await fleet.run(
            duration=args.duration, until_done=args.until_done, progress=progress
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``csms-sim``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "scenarios":
        print(_scenario_lines())
        return 0
    if not args.url.startswith(("ws://", "wss://")):
        parser.error("--url must start with ws:// or wss://")
    if args.url.startswith("ws://") and (args.ca_file or args.cert_file or args.key_file):
        parser.error("--ca-file/--cert-file/--key-file need a wss:// URL")
    try:
        scenario = Scenario.load(args.scenario)
    except ScenarioError as exc:
        parser.error(str(exc))
    if args.seed is not None:
        scenario = scenario.replace(seed=args.seed)
    limit = raise_fd_limit(args.chargers)
    if limit < args.chargers + 16:
        print(
            f"csms-sim: warning: only {limit} open files allowed for {args.chargers} chargers",
            file=sys.stderr,
        )
    progress = Progress(ProgressMode(args.progress), interval=args.progress_interval)
    progress.message(
        f"csms-sim: {args.chargers} charger(s) x {args.connectors} connector(s), "
        f"scenario {scenario.name}, speed {args.speed or scenario.speed:g}, url {args.url}"
    )
    try:
        summary = asyncio.run(_run(args, scenario, progress))
    except ValueError as exc:
        parser.error(str(exc))
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    if args.summary is not None:
        args.summary.write_text(text + "\n", encoding="utf-8")
        progress.message(f"summary written to {args.summary}")
    else:
        progress.end()
        print(text)
    if not summary["ok"]:
        progress.message(
            f"csms-sim: FAILED: {summary['protocol_errors']} protocol error(s), "
            f"{summary['callerrors_received']} CALLERROR(s), {summary['timeouts']} timeout(s), "
            f"{summary['unreachable']} charger(s) never connected"
        )
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
