"""C2, scale-out: 10,000 chargers on three nodes, the busiest node killed (SIGKILL); the
time until the survivors hold every charger (issue 18's target: < 60 s).

bench/cluster.py does the work: two HAProxy processes (deploy/haproxy.cfg), each in front
of 5,000 csms-sim chargers from a simulator process of its own, since a process may open
at most 20,000 files here and a proxied charger costs HAProxy two (docs/performance.md,
"Cluster"). Needs PostgreSQL, Mosquitto and haproxy; skipped without them.
"""

from __future__ import annotations

import shutil

from cluster import reconnect
from report import Report, Row, progress

from scenarios.common import Options

LABEL = "C2"
FLEET = 10_000
SYSTEM = "csms cluster, 3 nodes, 2 HAProxy"
SETTING = f"{FLEET:,} idle chargers, SIGKILL of the busiest node"
METRIC = "all held by the survivors"
TARGET_S = 60


async def cluster_reconnect(report: Report, opts: Options) -> None:
    if shutil.which("haproxy") is None:
        progress("C2 skipped: no haproxy")
        return
    runs: list[dict[str, float]] = []
    try:
        # One run unless asked for more: each takes a minute or two.
        for n in range(max(1, opts.repeats // 3)):
            progress(f"C2 reconnect: {FLEET:,} chargers on 3 nodes, run {n + 1}")
            runs.append(await reconnect(FLEET, say=lambda line: progress(f"C2 {line}")))
    except TimeoutError:
        progress("C2: not all chargers held within the bench's time budget")
        report.notes.append(
            f"C2: {FLEET:,} chargers were not all held within the bench's time budget"
        )
        return
    except OSError as exc:  # no PostgreSQL or Mosquitto here
        progress(f"C2 skipped: {exc!r}")
        return
    report.add(
        Row(
            LABEL,
            SYSTEM,
            SETTING,
            METRIC,
            "s",
            [r["all_on_survivors_s"] for r in runs],
            note=f"(target < {TARGET_S} s; {runs[0]['victim_chargers']:,.0f} on the killed node)",
            higher_is_better=False,
        )
    )
    report.add(
        Row(
            LABEL,
            SYSTEM,
            f"{FLEET:,} idle chargers connecting at once",
            "all held",
            "s",
            [r["initial_connect_s"] for r in runs],
            higher_is_better=False,
        )
    )
