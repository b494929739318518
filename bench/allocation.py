"""`make bench` P8: one allocation pass of the circuit allocator, and the profiles a busy
day sends per connector per hour.

    python bench/allocation.py          # alone, prints the figures

The tree: a site, 10 feeders, 100 sub-boards, 1,000 connectors (10 per board), every
connector with a session; a fifth of the cars single-phase on rotated stations, caps of 16
or 32 A, two priority classes. Every level binds somewhere. The reference in the same run
is the EVerest-style allocator (0.5 A slices handed round-robin until nothing fits,
`EnergyManagerImpl.cpp` run_optimizer), written here in the same Python, on the same
snapshot: the ratio says what the exact progressive filling saves.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csms.core.allocator import PHASES, Demand, Node, allocate, violations
from csms.core.balancing import Applied, BalancerPolicy, plan

TARGET_MS = 5.0


def snapshot(seed: int = 7) -> tuple[list[Node], list[Demand]]:
    """The three-level tree with 1,000 sessions."""
    rng = random.Random(seed)
    nodes = [Node("site", None, (25000, 25000, 25000), (2000, 1500, 1000))]
    demands = []
    for f in range(10):
        nodes.append(Node(f"f{f}", "site", (6300, 6300, 6300)))
        for b in range(10):
            board = f"f{f}b{b}"
            nodes.append(Node(board, f"f{f}", (1000, 1000, 1000)))
            for c in range(10):
                phases = (rng.randrange(3),) if rng.random() < 0.2 else (0, 1, 2)
                demands.append(
                    Demand(
                        key=(f"{board}c{c}", 1),
                        node_id=board,
                        phases=phases,
                        min_da=60,
                        max_da=rng.choice((160, 320)),
                        priority=1 if rng.random() < 0.1 else 0,
                        order=len(demands),
                    )
                )
    return nodes, demands


def slices(nodes: list[Node], demands: list[Demand], slice_da: int = 5) -> dict:
    """The reference: minimum or nothing, then 0.5 A slices round-robin (EVerest-style)."""
    parent = {n.node_id: n.parent_id for n in nodes}
    left = {(n.node_id, p): n.limit[p] - n.reserved[p] for n in nodes for p in range(PHASES)}

    def path(d: Demand) -> list[tuple[str, int]]:
        out, node = [], d.node_id
        while node is not None:
            out.extend((node, p) for p in d.phases)
            node = parent[node]
        return out

    paths = {d.key: path(d) for d in demands}
    got = {}
    for d in demands:
        ok = all(left[c] >= d.min_da for c in paths[d.key])
        got[d.key] = d.min_da if ok else 0
        if ok:
            for c in paths[d.key]:
                left[c] -= d.min_da
    active = [d for d in demands if got[d.key]]
    for _ in range(1000):
        moved = False
        for d in active:
            if got[d.key] + slice_da <= d.max_da and all(left[c] >= slice_da for c in paths[d.key]):
                got[d.key] += slice_da
                for c in paths[d.key]:
                    left[c] -= slice_da
                moved = True
        if not moved:
            break
    return got


def busy_day_profiles_per_hour(policy: BalancerPolicy, seed: int = 3) -> float:
    """Profiles sent per connector per hour of session on a busy simulated commuter day.

    20 connectors on a 63 A/phase circuit: arrivals 07:00-09:30 and a midday wave, cars that
    want 16 or 32 A and taper near full, a pass on every arrival and departure and a 60 s
    tick. The schedule times are offsets from the day's start, not times of day.
    """
    rng = random.Random(seed)
    day = datetime(2026, 3, 2, tzinfo=UTC)
    sessions = []
    for c in range(20):
        for arrive_h, stay_h in (
            (rng.uniform(7, 9.5), rng.uniform(7, 9)),
            (rng.uniform(12, 14), 2),
        ):
            arrive = arrive_h * 3600
            sessions.append((c, arrive, arrive + stay_h * 3600, rng.choice((160, 320))))
    nodes = [Node("site", None, (630, 630, 630))]
    applied: dict[tuple[str, int], Applied] = {}
    sent = 0
    session_seconds = 0.0
    for tick in range(0, 86400, 60):
        now = day + timedelta(seconds=tick)
        active = [s for s in sessions if s[1] <= tick < s[2]]
        demands = []
        for c, arrive, leave, want in active:
            left = (leave - tick) / (leave - arrive)
            taper = want if left > 0.2 else max(60, int(want * left / 0.2) // 10 * 10)
            demands.append(Demand((f"c{c}", 1), "site", (0, 1, 2), 60, taper, order=int(arrive)))
        keys = {d.key for d in demands}
        applied = {k: v for k, v in applied.items() if k in keys}
        grants = allocate(nodes, demands)
        changes = plan(grants, applied, now=now, policy=policy, controlled=sorted(keys))
        for change in (*changes.decreases, *changes.increases):
            sent += 1
            applied[change.key] = Applied(
                change.limit_da, now, now + timedelta(seconds=policy.lease_s)
            )
        session_seconds += 60 * len(active)
    return sent / (session_seconds / 3600)


def timed(fn, *args, repeats: int = 30) -> list[float]:  # type: ignore[no-untyped-def]
    """CPU milliseconds per call (process time: other processes on the core do not count)."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        fn(*args)
        times.append((time.process_time() - started) * 1000)
    return times


def measure(repeats: int = 30) -> dict[str, float]:
    """Median milliseconds per pass, ours and the reference's, and the check's."""
    nodes, demands = snapshot()
    grants = allocate(nodes, demands)
    assert not violations(nodes, demands, grants), "the allocator overloaded a node"
    ours = statistics.median(timed(allocate, nodes, demands, repeats=repeats))
    check = statistics.median(timed(violations, nodes, demands, grants, repeats=repeats))
    reference = statistics.median(timed(slices, nodes, demands, repeats=max(3, repeats // 5)))
    used = sum(g.limit_da for g in grants.values()) / 10
    ref_used = sum(slices(nodes, demands).values()) / 10
    return {
        "allocate_ms": ours,
        "check_ms": check,
        "reference_ms": reference,
        "granted_a": used,
        "reference_granted_a": ref_used,
        "profiles_per_connector_hour": busy_day_profiles_per_hour(BalancerPolicy()),
    }


async def allocation(report, opts) -> None:  # type: ignore[no-untyped-def]
    """The P8 scenario for bench/run.py."""
    from report import Row

    figures = measure(repeats=10 if opts.quick else 30)
    setting = "1,000 conn., 3 levels"
    for system, key, unit, higher in (
        ("csms allocator", "allocate_ms", "ms", False),
        ("csms invariant check", "check_ms", "ms", False),
        ("0.5 A slices (EVerest-style)", "reference_ms", "ms", False),
        ("csms allocator", "granted_a", "A granted", True),
        ("0.5 A slices (EVerest-style)", "reference_granted_a", "A granted", True),
    ):
        metric = "one pass" if unit == "ms" else "current handed out"
        report.add(
            Row("P8", system, setting, metric, unit, [figures[key]], higher_is_better=higher)
        )
    report.add(
        Row(
            "P8",
            "csms balancer",
            "busy simulated day",
            "profiles per connector per hour",
            "profiles/h",
            [figures["profiles_per_connector_hour"]],
            higher_is_better=False,
        )
    )


def main() -> None:
    figures = measure()
    print(
        f"one allocation pass, 1,000 connectors, 3 levels: {figures['allocate_ms']:.2f} ms "
        f"(target < {TARGET_MS} ms)"
    )
    print(f"invariant check: {figures['check_ms']:.2f} ms")
    print(
        f"reference (0.5 A slices): {figures['reference_ms']:.2f} ms, "
        f"{figures['reference_ms'] / figures['allocate_ms']:.1f}x ours"
    )
    print(
        f"current handed out: {figures['granted_a']:.1f} A, "
        f"reference {figures['reference_granted_a']:.1f} A"
    )
    print(
        f"profiles per connector per hour, busy day: {figures['profiles_per_connector_hour']:.2f}"
    )


if __name__ == "__main__":
    main()
