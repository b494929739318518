"""P3, secured_storm: 10,000 security-profile-1 chargers (HTTP Basic, an AuthorizationKey
each) reconnecting at once after a restart; the issue's target is all booted in < 30 s.

The chargers are provisioned once through the API (`PUT /charge-points/{id}` with
`securityProfile: 1` and a 40-hex-digit key) by one csms process; each run then starts a
new process on the same database, with nothing cached, and takes the storm, so every
password check is a first check, as after a restart. The first run is sampled with py-spy
(from core 1): its CPU by layer goes to the report's profiles, its hottest functions to
the notes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import httpx
from loadgen import authorization_key, idle_chargers
from processes import Database, Server, csms_server, fresh_database, listen_overflows
from profiling import breakdown, hot_functions, py_spy
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "P3"
SYSTEM = "csms + sqlite, profile 1"
TARGET_S = 30.0
PROVISIONING = 64  # API requests in flight while provisioning


async def secured_storm(report: Report, opts: Options) -> None:
    progress("P3 connections: a secured reconnect storm (profile 1, Basic auth)")
    storm = 2000 if opts.quick else 10000
    times: list[float] = []
    failures: list[float] = []
    cpu_seconds: list[float] = []
    prefix, seed = f"K{uuid.uuid4().hex[:5]}-", secrets.token_hex(8)
    with fresh_database("sqlite", opts.scratch) as database:
        async with csms_server(database, opts.scratch) as server:
            progress(f"P3 secured storm: provisioning {storm:,} profile-1 chargers")
            started = time.perf_counter()
            await provision(server, storm, prefix, seed)
            report.notes.append(
                f"P3 secured storm: {storm:,} chargers provisioned through the API in "
                f"{time.perf_counter() - started:.0f} s"
            )
        for n in range(opts.repeats):
            # Each run is a new csms process on the same database: nothing cached.
            progress(f"P3 secured storm: {storm:,} at once after a restart, run {n + 1}")
            ready = await one_storm(report, opts, database, storm, prefix, seed, profile=n == 0)
            times.append(ready["setup_s"])
            failures.append(float(ready["setup_failures"]))
            cpu_seconds.append(ready["server_cpu_s"])
    setting = f"{storm:,} at once, after a restart"
    median = sorted(times)[len(times) // 2]
    report.add(
        Row(
            LABEL,
            SYSTEM,
            setting,
            "secured storm, all booted",
            "s",
            times,
            higher_is_better=False,
            note=f"(target < {TARGET_S:.0f} s: {median / TARGET_S:.2f}x)",
        )
    )
    report.add(
        Row(LABEL, SYSTEM, setting, "secured storm failures", "", failures, higher_is_better=False)
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            setting,
            "secured storm, csms CPU",
            "s",
            cpu_seconds,
            higher_is_better=False,
            note="(CPU seconds csms spent until all booted)",
        )
    )


async def one_storm(
    report: Report,
    opts: Options,
    database: Database,
    storm: int,
    prefix: str,
    seed: str,
    *,
    profile: bool,
) -> dict[str, Any]:
    """Every charger at once on a freshly started csms; loadgen.js's figures. With
    `profile`, py-spy samples csms meanwhile and the report gets where its CPU went."""
    overflows_before = listen_overflows()
    raw = opts.scratch / "secured-storm.raw"
    async with csms_server(database, opts.scratch) as server:
        spy = asyncio.create_task(py_spy(server.pid, raw, 60)) if profile else None
        cpu = server.cpu()
        async with idle_chargers(server, storm, 0, prefix, basic_key_seed=seed) as ready:
            # CPU seconds csms spent on the storm: what a busy machine does not inflate.
            ready["server_cpu_s"] = server.cpu() - cpu
        if spy is not None:
            await spy  # py-spy keeps busy samples only: the idle rest of its window adds none
    report.notes.append(
        f"P3 secured storm: {ready['booted']:,} booted in {ready['setup_s']:.1f} s "
        f"({ready['server_cpu_s']:.1f} s of csms CPU), failures "
        f"{ready['failure_reasons'] or 0}; the kernel dropped "
        f"{listen_overflows() - overflows_before:,} SYNs on full accept queues meanwhile"
    )
    if profile:
        name = f"P3 secured storm, {storm:,} profile-1 chargers"
        report.profiles[name] = breakdown(raw)
        for kind, lines in hot_functions(raw).items():
            report.notes.append(f"{name}, hottest functions ({kind}): " + "; ".join(lines))
    return ready


async def provision(server: Server, count: int, prefix: str, seed: str) -> None:
    """Register `count` chargers at profile 1, each with its AuthorizationKey."""
    base = f"http://127.0.0.1:{server.api_port}/api/v1"
    queue: asyncio.Queue[str] = asyncio.Queue()
    for index in range(1, count + 1):
        queue.put_nowait(f"{prefix}{index:05d}")

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            identity = queue.get_nowait()
            body = {"securityProfile": 1, "password": authorization_key(seed, identity)}
            for attempt in range(3):
                try:
                    answer = await client.put(f"/charge-points/{identity}", json=body)
                    break
                except httpx.TransportError:
                    # A kept-alive connection the server closed meanwhile: PUT is idempotent.
                    if attempt == 2:
                        raise
            answer.raise_for_status()

    limits = httpx.Limits(max_connections=PROVISIONING)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(PROVISIONING)))
