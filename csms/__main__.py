"""The `csms` command line: serve, migrate, and show the effective configuration."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import getpass
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson

from csms.admin import add_account, migrate_only
from csms.app import serve
from csms.config import Settings, load_settings
from csms.core.access import Role, password_problem, username_problem
from csms.errors import ConfigError, CsmsError
from csms.log import configure_logging

DEFAULT_CONFIG = "config.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csms",
        description=(
            "An OCPP 1.6J central system. Chargers connect over WebSocket "
            "(ws://HOST:9000/ocpp/{chargePointId}); operators use the HTTP API "
            "(http://127.0.0.1:8180/api/v1, OpenAPI at /docs)."
        ),
        epilog=(
            "Configuration comes from the TOML file, and every key can be overridden from the "
            "environment as CSMS_<SECTION>__<KEY>, e.g. CSMS_OCPP__PORT=9100."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = f"configuration file (default: ./{DEFAULT_CONFIG} when it exists)"
    serve_cmd = commands.add_parser(
        "serve",
        help="run the central system (OCPP server, HTTP API, database migrations at start)",
        description="Run the OCPP server and HTTP API until SIGTERM/SIGINT, then shut down "
        "cleanly: chargers are closed with 1001 and pending writes are flushed.",
    )
    serve_cmd.add_argument("--config", metavar="PATH", help=config_help)
    migrate_cmd = commands.add_parser(
        "migrate",
        help="apply the database migrations and exit",
        description="Apply every Alembic migration to database.url and exit.",
    )
    migrate_cmd.add_argument("--config", metavar="PATH", help=config_help)
    config_cmd = commands.add_parser(
        "config",
        help="print the effective configuration (file + environment) as JSON and exit",
        description="Print the effective configuration; api.token and the pepper are masked.",
    )
    config_cmd.add_argument("--config", metavar="PATH", help=config_help)
    _add_user_command(commands, config_help)
    return parser


def _add_user_command(commands: Any, config_help: str) -> None:
    user_cmd = commands.add_parser(
        "user",
        help="manage operator accounts (the first admin of the dashboard)",
        description="Operator accounts for the dashboard; later ones are usually made "
        "through the API (POST /api/v1/accounts).",
    )
    actions = user_cmd.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add_cmd = actions.add_parser(
        "add",
        help="add an account, asking for its password",
        description="Add an operator account. The password is asked for twice on a "
        "terminal, or read as the first line of standard input otherwise.",
    )
    add_cmd.add_argument("username")
    add_cmd.add_argument("--role", choices=[role.value for role in Role], default=Role.ADMIN.value)
    add_cmd.add_argument(
        "--update",
        action="store_true",
        help="set the password and role of an existing account instead (a forgotten password)",
    )
    add_cmd.add_argument("--config", metavar="PATH", help=config_help)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(f"csms: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        shown = dataclasses.asdict(settings)
        shown["api"]["token"] = "***" if settings.api.token else ""
        shown["security"]["password_pepper"] = "***" if settings.security.password_pepper else ""
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return 0
    configure_logging(level=settings.log.level, fmt=settings.log.format)
    if args.command == "user":
        return _add_user(settings, args)
    try:
        _run(serve(settings) if args.command == "serve" else migrate_only(settings))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"csms: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_user(settings: Settings, args: argparse.Namespace) -> int:
    problem = username_problem(args.username)
    if problem is not None:
        print(f"csms: {problem}", file=sys.stderr)
        return 2
    password = _read_password()
    if password is None:
        print("csms: the passwords do not match", file=sys.stderr)
        return 2
    problem = password_problem(password)
    if problem is not None:
        print(f"csms: {problem}", file=sys.stderr)
        return 2
    try:
        saved = asyncio.run(
            add_account(
                settings,
                username=args.username,
                role=Role(args.role),
                password=password,
                update=args.update,
            )
        )
    except CsmsError as exc:
        print(f"csms: {exc}", file=sys.stderr)
        return 1
    if not saved:
        reason = "no account named" if args.update else "there is already an account named"
        print(f"csms: {reason} {args.username}", file=sys.stderr)
        return 1
    print(f"{'updated' if args.update else 'added'} {args.role} {args.username}")
    return 0


def _read_password() -> str | None:
    """From a terminal: asked twice, None when they differ; else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        return first if getpass.getpass("again: ") == first else None
    return sys.stdin.readline().rstrip("\r\n")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (`pip install csms[speed]`), else on asyncio's loop."""
    # The modules (SQLAlchemy, pydantic models, schemas) are some 150k long-lived objects;
    # out of the collector's sight, full collections stop pausing every connection.
    gc.freeze()
    # A full collection is tried after every 10th young one (CPython's default), and runs
    # when what survived since the last grew the old generation by 25 %. Chargers that
    # connect at once grow it that way for as long as they keep coming: in a boot storm of
    # 10,000 (each some 70 tracked objects), 8-9 full passes of up to 0.4 s were 2.6 of
    # csms's 5.4 CPU seconds. Tried after every 100th instead: 1 pass, 0.9 s of GC in all
    # (bench/analysis.md, "The picows storm"). Young collections are unchanged.
    threshold0, threshold1, _ = gc.get_threshold()
    gc.set_threshold(threshold0, threshold1, 100)
    try:
        # Typed when the `speed` extra is installed, unknown to mypy when it is not.
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    sys.exit(main())
