"""Where csms spends its CPU: py-spy samples, and each sample's layer (WebSocket, storage...)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from processes import GENERATOR_CORE, PYTHON, pinned
from report import progress

CATEGORIES = [
    # (category, substrings of a frame's file as py-spy prints it, e.g. "websockets/frames.py");
    # the innermost frame that matches decides.
    (
        "storage",
        ("sqlalchemy/", "aiosqlite/", "asyncpg/", "sqlite3/", "csms/store/", "sqlmodel/"),
    ),
    ("events", ("csms/events/", "pydantic", "aiomqtt/", "paho/", "amqtt/")),
    ("WebSocket layer", ("websockets/", "picows/", "csms/ocpp16/transport_picows.py")),
    (
        "parsing + validation",
        ("csms/ocpp16/rpc.py", "csms/ocpp16/schemas.py", "jsonschema", "orjson"),
    ),
    (
        "handlers",
        (
            "csms/ocpp16/handlers.py",
            "csms/core/",
            "csms/ocpp16/connection.py",
            "csms_protocol.py",
            "csms/ocpp16/server.py",
        ),
    ),
    ("logging", ("structlog/", "logging/")),
    ("HTTP API", ("uvicorn/", "fastapi/", "starlette/", "csms/api/")),
]
OTHER = "event loop, I/O and other"


async def py_spy(pid: int, output: Path, seconds: float) -> None:
    """Sample the server with py-spy for `seconds` (from core 1, nonblocking)."""
    command = [
        str(Path(PYTHON).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(output),
        "--nonblocking",
    ]
    process = await asyncio.create_subprocess_exec(
        *pinned(GENERATOR_CORE, command),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        progress(f"py-spy failed: {err.decode(errors='replace')[-300:]}")


def classify(stack: str) -> str:
    """The layer of one py-spy stack ("frame;frame;..."), by its innermost known frame."""
    frames = stack.split(";")
    # Frames outside the event loop (the script's <module>, asyncio.run) say nothing.
    for index in range(len(frames) - 1, -1, -1):
        if "asyncio/runners.py" in frames[index]:
            frames = frames[index + 1 :]
            break
    for frame in reversed(frames):
        for category, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return category
    return OTHER


def breakdown(raw: Path) -> dict[str, float]:
    """% of samples per layer in a py-spy raw file, largest first ({} when there is none)."""
    counts: Counter[str] = Counter()
    if not raw.exists():
        return {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[classify(stack)] += int(count)
    total = sum(counts.values()) or 1
    return {category: 100.0 * n / total for category, n in counts.most_common()}


def _function(frame: str) -> str:
    """ "name (path/file.py:123)" -> "name (file.py)": one entry per function, any line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def hot_functions(raw: Path, *, top: int = 12, within: str = "csms/") -> dict[str, list[str]]:
    """Where the samples went, by function: `self` (the innermost frame, any code) and
    `inclusive` (the samples each function of `within` was on the stack for), largest first,
    as "share % function" lines ({} when there is no file)."""
    if not raw.exists():
        return {}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[_function(frames[-1])] += int(count)
        for function in {_function(f) for f in frames if within in f}:
            inclusive[function] += int(count)
    total = total or 1
    return {
        kind: [f"{100 * n / total:.1f} % {name}" for name, n in counts.most_common(top)]
        for kind, counts in (("self", own), ("inclusive", inclusive))
    }
