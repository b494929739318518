"""GET /api/v1/cluster: the nodes, their leases, chargers, partitions and relay lag
(docs/deployment.md, "Monitoring")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from csms.api.auth import require
from csms.api.context import ApiContext, ClusterView
from csms.core.access import Scope
from csms.core.clock import as_utc
from csms.core.cluster import LEADER, partition_of_lease
from csms.store import cluster


def add_cluster_routes(router: APIRouter, ctx: ApiContext) -> None:
    @router.get("/cluster", tags=["cluster"], dependencies=[require(Scope.READ)])
    async def get_cluster() -> dict[str, Any]:
        """The cluster as PostgreSQL records it; `enabled: false` on a standalone node."""
        view: ClusterView | None = ctx.cluster
        if view is None:
            return {"enabled": False, "node": None, "nodes": [], "partitions": []}
        count = view.partition_count
        facts = await ctx.read(lambda session: cluster.overview(session, partitions=count))
        return _shape(facts, node=view.node_id, count=count)


def _shape(facts: dict[str, Any], *, node: str, count: int) -> dict[str, Any]:
    backlog = {int(p): (int(n), _age(oldest, now)) for p, n, oldest, now in facts["backlog"]}
    partitions = []
    leader: str | None = None
    held: dict[str, list[int]] = {}
    for name, holder, generation, expires_at, valid in facts["leases"]:
        if name == LEADER:
            leader = holder if valid else None
            continue
        partition = partition_of_lease(name)
        if partition is None or partition >= count:
            continue
        pending, age = backlog.get(partition, (0, None))
        partitions.append(
            {
                "partition": partition,
                "nodeId": holder if valid else None,
                "generation": int(generation),
                "leaseExpiresAt": as_utc(expires_at).isoformat(),
                "pendingEvents": pending,
                "oldestPendingAgeSeconds": age,
            }
        )
        if valid and holder is not None:
            held.setdefault(holder, []).append(partition)
    nodes = [
        {
            "nodeId": node_id,
            "startedAt": as_utc(started).isoformat(),
            "heartbeatAt": as_utc(beat).isoformat(),
            "leaseUntil": as_utc(until).isoformat(),
            "alive": bool(alive),
            "draining": bool(draining),
            "leader": node_id == leader,
            "chargers": int(chargers),
            "partitions": sorted(held.get(node_id, [])),
            "relayLag": _lag(backlog, held.get(node_id, [])),
        }
        for node_id, started, beat, until, draining, alive, chargers in facts["nodes"]
    ]
    total = sum(n for n, _ in backlog.values())
    ages = [age for _, age in backlog.values() if age is not None]
    return {
        "enabled": True,
        "node": node,
        "leader": leader,
        "partitionCount": count,
        "nodes": nodes,
        "partitions": sorted(partitions, key=lambda p: p["partition"]),
        "relayLag": {"pendingEvents": total, "oldestPendingAgeSeconds": max(ages, default=None)},
    }


def _lag(backlog: dict[int, tuple[int, float | None]], held: list[int]) -> dict[str, Any]:
    pending = [backlog[p] for p in held if p in backlog]
    ages = [age for _, age in pending if age is not None]
    return {
        "pendingEvents": sum(n for n, _ in pending),
        "oldestPendingAgeSeconds": max(ages, default=None),
    }


def _age(oldest: datetime | None, now: datetime) -> float | None:
    if oldest is None:
        return None
    return round(max(0.0, (as_utc(now) - as_utc(oldest)).total_seconds()), 3)
