"""Scale-out bookkeeping in PostgreSQL: node heartbeats, leases, charger ownership, and the
outbox partition reads and fenced marks of the cluster relay (docs/deployment.md).

Cluster mode runs on PostgreSQL only, so these statements are PostgreSQL's own SQL.
Lease times come from the database clock (`now()`), never a node's, so nodes with skewed
clocks still agree on who holds what.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import as_utc
from csms.core.cluster import SLOTS, LeaseView
from csms.errors import StoreError
from csms.store.db import Database
from csms.store.outbox import PendingEvent

NO_NODE = ""


@contextlib.asynccontextmanager
async def transaction(database: Database) -> AsyncIterator[AsyncSession]:
    """A transaction of its own, outside the group-commit writer: a heartbeat must not
    wait behind a queue of charger writes, or the node would lose its leases under load.

    Raises:
        StoreError: the database failed.
    """
    try:
        async with database.sessions() as session, session.begin():
            yield session
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(f"cluster bookkeeping failed: {type(exc).__name__}") from exc


# --- nodes and leases ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat learnt: the leases (with this node's generations) and live nodes."""

    leases: list[LeaseView]
    held: dict[str, int]
    # Live nodes that are not draining: those that should hold partitions.
    live: list[str]


async def heartbeat(
    session: AsyncSession, *, node_id: str, lease_seconds: float, chargers: int, draining: bool
) -> Beat:
    """Renew the node's lease and the leases it holds that have not expired yet."""
    await session.execute(
        text(
            "INSERT INTO cluster_nodes (node_id, started_at, heartbeat_at, lease_until,"
            " draining, chargers) VALUES (:me, now(), now(),"
            " now() + make_interval(secs => :s), :draining, :chargers)"
            " ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(),"
            " lease_until = now() + make_interval(secs => :s), draining = :draining,"
            " chargers = :chargers"
        ),
        {"me": node_id, "s": lease_seconds, "draining": draining, "chargers": chargers},
    )
    await session.execute(
        text(
            "UPDATE cluster_leases SET expires_at = now() + make_interval(secs => :s)"
            " WHERE node_id = :me AND expires_at > now()"
        ),
        {"me": node_id, "s": lease_seconds},
    )
    rows = await session.execute(
        text("SELECT name, node_id, generation, expires_at <= now() FROM cluster_leases")
    )
    leases: list[LeaseView] = []
    held: dict[str, int] = {}
    for name, holder, generation, expired in rows:
        leases.append(LeaseView(name=name, holder=holder, expired=bool(expired)))
        if holder == node_id and not expired:
            held[name] = int(generation)
    live = await session.execute(
        text(
            "SELECT node_id FROM cluster_nodes WHERE lease_until > now() AND NOT draining"
            " ORDER BY node_id"
        )
    )
    return Beat(leases=leases, held=held, live=[str(node) for node in live.scalars()])


async def acquire(
    session: AsyncSession, *, name: str, node_id: str, lease_seconds: float
) -> int | None:
    """Take a free or expired lease; returns its new generation, None when held by another."""
    row = await session.execute(
        text(
            "INSERT INTO cluster_leases (name, node_id, generation, expires_at)"
            " VALUES (:name, :me, 1, now() + make_interval(secs => :s))"
            " ON CONFLICT (name) DO UPDATE SET node_id = :me,"
            " generation = cluster_leases.generation + 1,"
            " expires_at = now() + make_interval(secs => :s)"
            " WHERE cluster_leases.expires_at <= now() OR cluster_leases.node_id IS NULL"
            " RETURNING generation"
        ),
        {"name": name, "me": node_id, "s": lease_seconds},
    )
    generation = row.scalar_one_or_none()
    return None if generation is None else int(generation)


async def release(session: AsyncSession, *, name: str, node_id: str, generation: int) -> bool:
    """Give a lease up at once (draining, rebalancing): another node may take it now."""
    result = await session.execute(
        text(
            "UPDATE cluster_leases SET node_id = NULL, expires_at = now()"
            " WHERE name = :name AND node_id = :me AND generation = :g"
        ),
        {"name": name, "me": node_id, "g": generation},
    )
    return bool(getattr(result, "rowcount", 0))


async def leave(session: AsyncSession, *, node_id: str) -> None:
    """A clean exit: the node's remaining leases are free and the node is gone."""
    await session.execute(
        text("UPDATE cluster_leases SET node_id = NULL, expires_at = now() WHERE node_id = :me"),
        {"me": node_id},
    )
    await session.execute(text("DELETE FROM cluster_nodes WHERE node_id = :me"), {"me": node_id})


async def holds(session: AsyncSession, *, name: str, node_id: str, generation: int) -> bool:
    """Whether the node still holds the lease at this generation; locks the lease row
    (FOR SHARE) until the transaction ends, so that nobody can take it meanwhile."""
    row = await session.execute(
        text(
            "SELECT 1 FROM cluster_leases WHERE name = :name AND node_id = :me"
            " AND generation = :g AND expires_at > now() FOR SHARE"
        ),
        {"name": name, "me": node_id, "g": generation},
    )
    return row.first() is not None


async def dead_nodes(session: AsyncSession) -> list[str]:
    """Nodes whose lease has expired."""
    rows = await session.execute(
        text("SELECT node_id FROM cluster_nodes WHERE lease_until <= now() ORDER BY node_id")
    )
    return [str(node) for node in rows.scalars()]


async def forget_nodes(session: AsyncSession, nodes: Sequence[str]) -> None:
    await session.execute(
        text("DELETE FROM cluster_nodes WHERE node_id = ANY(:nodes) AND lease_until <= now()"),
        {"nodes": list(nodes)},
    )


# --- charger ownership -----------------------------------------------------------------------


async def take_charger(
    session: AsyncSession, *, charge_point_id: str, node_id: str, now: datetime
) -> int:
    """The node now holds the charger's connection; returns the connection's generation."""
    row = await session.execute(
        text(
            "INSERT INTO charger_owners (charge_point_id, node_id, generation, since)"
            " VALUES (:cp, :me, 1, :now) ON CONFLICT (charge_point_id) DO UPDATE"
            " SET node_id = :me, generation = charger_owners.generation + 1, since = :now"
            " RETURNING generation"
        ),
        {"cp": charge_point_id, "me": node_id, "now": now},
    )
    return int(row.scalar_one())


async def let_go_charger(
    session: AsyncSession, *, charge_point_id: str, node_id: str, generation: int
) -> bool:
    """The connection closed: True when this node and generation still held it (the
    disconnect is then recorded), False when a newer connection elsewhere took over."""
    result = await session.execute(
        text(
            "UPDATE charger_owners SET node_id = :none WHERE charge_point_id = :cp"
            " AND node_id = :me AND generation = :g"
        ),
        {"cp": charge_point_id, "me": node_id, "g": generation, "none": NO_NODE},
    )
    return bool(getattr(result, "rowcount", 0))


async def let_go_chargers_of(session: AsyncSession, nodes: Sequence[str]) -> list[str]:
    """Chargers held by these (dead) nodes are held by nobody; returns their ids."""
    rows = await session.execute(
        text(
            "UPDATE charger_owners SET node_id = :none WHERE node_id = ANY(:nodes)"
            " RETURNING charge_point_id"
        ),
        {"nodes": list(nodes), "none": NO_NODE},
    )
    return sorted(str(cp) for cp in rows.scalars())


async def let_go_orphans(session: AsyncSession) -> list[str]:
    """Chargers held by nodes that are gone or whose lease expired are held by nobody."""
    rows = await session.execute(
        text(
            "UPDATE charger_owners SET node_id = :none WHERE node_id <> :none AND node_id NOT IN"
            " (SELECT node_id FROM cluster_nodes WHERE lease_until > now())"
            " RETURNING charge_point_id"
        ),
        {"none": NO_NODE},
    )
    return sorted(str(cp) for cp in rows.scalars())


@dataclass(frozen=True, slots=True)
class Owner:
    node_id: str
    generation: int


async def owner_of(session: AsyncSession, charge_point_id: str) -> Owner | None:
    """The live node holding the charger's connection, if any."""
    row = await session.execute(
        text(
            "SELECT o.node_id, o.generation FROM charger_owners o JOIN cluster_nodes n"
            " ON n.node_id = o.node_id WHERE o.charge_point_id = :cp AND n.lease_until > now()"
        ),
        {"cp": charge_point_id},
    )
    found = row.first()
    return None if found is None else Owner(node_id=str(found[0]), generation=int(found[1]))


# --- the partitioned outbox ------------------------------------------------------------------


def partition_slots(partition: int, partitions: int) -> list[int]:
    """The slots of a partition."""
    return list(range(partition, SLOTS, partitions))


@dataclass(frozen=True, slots=True)
class PartitionEvent:
    """A pending event of a partition and how far the relay got with it."""

    event: PendingEvent
    released: bool


async def partition_pending(
    session: AsyncSession, *, slots: Sequence[int], limit: int
) -> list[PartitionEvent]:
    """A partition's undelivered events, oldest first."""
    rows = await session.execute(
        text(
            "SELECT id, event_id, charge_point_id, type, subject, time, CAST(data AS TEXT),"
            " created_at, relay_state FROM outbox_events"
            " WHERE delivered_at IS NULL AND slot = ANY(:slots) ORDER BY id LIMIT :limit"
        ),
        {"slots": list(slots), "limit": limit},
    )
    return [
        PartitionEvent(
            event=PendingEvent(
                id=row[0],
                event_id=row[1],
                charge_point_id=row[2],
                type=row[3],
                subject=row[4],
                time=as_utc(row[5]),
                data=row[6],
                created_at=as_utc(row[7]),
            ),
            released=row[8] == 2,
        )
        for row in rows
    ]


async def mark_released(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """PUBREC received: from now on only a PUBREL may be sent for these (MQTT 3.1.1 §4.3.3)."""
    await session.execute(
        text("UPDATE outbox_events SET relay_state = 2 WHERE id = ANY(:ids)"), {"ids": list(ids)}
    )


async def mark_delivered(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    await session.execute(
        text("UPDATE outbox_events SET relay_state = 2, delivered_at = :now WHERE id = ANY(:ids)"),
        {"ids": list(ids), "now": now},
    )


# --- what GET /api/v1/cluster shows ----------------------------------------------------------


async def overview(session: AsyncSession, *, partitions: int) -> dict[str, Any]:
    """Nodes with their lease and chargers, leases, and the outbox backlog per partition."""
    nodes = await session.execute(
        text(
            "SELECT n.node_id, n.started_at, n.heartbeat_at, n.lease_until, n.draining,"
            " n.lease_until > now(), (SELECT count(*) FROM charger_owners o"
            " WHERE o.node_id = n.node_id) FROM cluster_nodes n ORDER BY n.node_id"
        )
    )
    leases = await session.execute(
        text(
            "SELECT name, node_id, generation, expires_at, expires_at > now()"
            " FROM cluster_leases ORDER BY name"
        )
    )
    backlog = await session.execute(
        text(
            "SELECT slot % :n, count(*), min(created_at), now() FROM outbox_events"
            " WHERE delivered_at IS NULL GROUP BY 1 ORDER BY 1"
        ),
        {"n": partitions},
    )
    return {
        "nodes": [tuple(row) for row in nodes],
        "leases": [tuple(row) for row in leases],
        "backlog": [tuple(row) for row in backlog],
    }
