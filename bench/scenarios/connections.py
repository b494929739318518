"""P3, many connections: idle_memory (RSS per idle booted charger) and boot_storm."""

from __future__ import annotations

import asyncio
import resource
import statistics
import uuid

from loadgen import idle_chargers
from processes import csms_server, fresh_database, listen_overflows, rss_bytes
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "P3"
# csms serve on each WebSocket layer (ocpp.transport); the issue's P3 targets are picows'.
TRANSPORTS = ("websockets", "picows")


def system(transport: str) -> str:
    return f"csms + sqlite ({transport})"


def idle_sizes(report: Report, opts: Options) -> list[int]:
    """The idle connection counts, capped by the file-descriptor limit (with a note)."""
    sizes = [1000] if opts.quick else [5000, 20000]
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if max(sizes) + 1000 > fd_limit:
        # The server needs a descriptor per charger plus its own (database, broker, logs).
        sizes = [min(size, fd_limit - 1000) for size in sizes]
        report.notes.append(
            f"P3: the file-descriptor limit is {fd_limit} and cannot be raised here "
            f"(no CAP_SYS_RESOURCE), so the largest run has {max(sizes):,} connections"
        )
    return sizes


async def idle_memory(report: Report, opts: Options) -> None:
    progress("P3 connections: RSS per idle booted charger")
    for transport in TRANSPORTS:
        for connections in idle_sizes(report, opts):
            await idle_memory_of(report, opts, transport, connections)


async def idle_memory_of(report: Report, opts: Options, transport: str, connections: int) -> None:
    values, setup = [], []
    for n in range(opts.repeats):
        progress(f"P3 RSS {connections} idle chargers, {transport}, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            async with csms_server(
                database, opts.scratch, CSMS_OCPP__TRANSPORT=transport
            ) as server:
                # Warm up code paths and caches once, so they do not count per connection.
                async with idle_chargers(server, 200, 200, f"W{n}-"):
                    pass
                await asyncio.sleep(1)
                before = rss_bytes(server.pid)
                async with idle_chargers(
                    server, connections, 500, f"I{uuid.uuid4().hex[:5]}-"
                ) as ready:
                    await asyncio.sleep(3)
                    after = rss_bytes(server.pid)
        if ready["booted"] < connections:
            report.notes.append(
                f"P3 {connections} {transport}: only {ready['booted']} booted "
                f"({ready['failure_reasons']})"
            )
        values.append((after - before) / max(1, ready["booted"]) / 1024)
        setup.append(ready["setup_s"])
    report.add(
        Row(
            LABEL,
            system(transport),
            f"{connections:,} idle",
            "RSS per booted charger",
            "KiB",
            values,
            higher_is_better=False,
            note=f"(connect+boot {statistics.median(setup):.1f} s, 500 at a time)",
        )
    )


async def boot_storm(report: Report, opts: Options) -> None:
    progress("P3 connections: a boot storm")
    for transport in TRANSPORTS:
        await boot_storm_of(report, opts, transport)


async def boot_storm_of(report: Report, opts: Options, transport: str) -> None:
    storm = 2000 if opts.quick else 10000
    times: list[float] = []
    failures: list[float] = []
    # CPU seconds until all booted: csms's (what a busy machine does not inflate, unlike the
    # wall time) and the generator's (a result is invalid if it saturated its core).
    server_cpu: list[float] = []
    generator_cpu: list[float] = []
    for n in range(opts.repeats):
        progress(f"P3 boot storm: {storm} at once, {transport}, run {n + 1}/{opts.repeats}")
        with fresh_database("sqlite", opts.scratch) as database:
            overflows_before = listen_overflows()
            async with csms_server(
                database, opts.scratch, CSMS_OCPP__TRANSPORT=transport
            ) as server:
                cpu = server.cpu()
                async with idle_chargers(server, storm, 0, f"S{uuid.uuid4().hex[:5]}-") as ready:
                    server_cpu.append(server.cpu() - cpu)
                    generator_cpu.append(ready["setup_cpu_s"])
                    times.append(ready["setup_s"])
                    failures.append(float(ready["setup_failures"]))
                overflows = listen_overflows() - overflows_before
                report.notes.append(
                    f"P3 storm run {n + 1} ({transport}): {ready['booted']:,} booted in "
                    f"{ready['setup_s']:.1f} s ({server_cpu[-1]:.1f} s of csms CPU, "
                    f"{generator_cpu[-1]:.1f} s of the generator's), failures "
                    f"{ready['failure_reasons'] or 0}; "
                    "the kernel dropped "
                    f"{overflows:,} SYNs on full accept queues (ListenOverflows) meanwhile"
                )
    setting = f"{storm:,} at once"
    report.add(
        Row(
            LABEL,
            system(transport),
            setting,
            "boot storm, all accepted",
            "s",
            times,
            higher_is_better=False,
        )
    )
    report.add(
        Row(
            LABEL,
            system(transport),
            setting,
            "boot storm, csms CPU",
            "s",
            server_cpu,
            higher_is_better=False,
            note=f"(CPU seconds until all booted; the generator's: "
            f"{statistics.median(generator_cpu):.1f} s)",
        )
    )
    report.add(
        Row(
            LABEL,
            system(transport),
            setting,
            "boot storm failures",
            "",
            failures,
            higher_is_better=False,
        )
    )
