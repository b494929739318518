"""P1, protocol_path: calls/s and latency of csms without storage, beside reference servers."""

from __future__ import annotations

from typing import Any

from loadgen import GENERATORS, run_load
from processes import REFERENCES, reference_server
from report import Report, progress

from scenarios.common import Options, load_rows

LABEL = "P1"


async def protocol_path(report: Report, opts: Options) -> None:
    progress("P1 protocol path: csms beside the references, no storage")
    # csms on each of its transports (ocpp.transport), beside the raw ceiling of each.
    names = (
        ["csms", "csms-picows", "raw-websockets", "raw-picows"]
        if opts.quick
        else [
            "csms",
            "csms-picows",
            "raw-websockets",
            "raw-picows",
            "ocpp-chargepoint",
            "ocpp-rpc",
        ]
    )
    sizes = [100] if opts.quick else [100, 1000]
    for name in names:
        async with reference_server(name) as server:
            for connections in sizes:
                for generator in GENERATORS:
                    runs: list[dict[str, Any]] = []
                    for n in range(opts.repeats):
                        progress(
                            f"P1 {name} {connections} connections, {generator} generator, "
                            f"run {n + 1}/{opts.repeats}"
                        )
                        runs.append(
                            await run_load(
                                server,
                                connections=connections,
                                duration=opts.duration,
                                warmup=opts.warmup,
                                generator=generator,
                            )
                        )
                    system = f"{REFERENCES[name][0]} [{generator} gen.]"
                    load_rows(report, LABEL, system, f"{connections} conn.", runs)
