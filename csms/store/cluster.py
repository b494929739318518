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

from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from csms.core.clock import as_utc
from csms.core.cluster import SLOTS, LeaseView, session_of
from csms.errors import StoreError
from csms.store.db import Database
from csms.store.outbox import PendingEvent

NO_NODE = ""
# A node's connections carry `application_name` = this prefix + its node id, so that the
# others can fence it (fence_dead_nodes).
APPLICATION_PREFIX = "csms-node:"


# Writer jobs pass a session; the cluster's own transactions a bare connection (no ORM
# session to set up and tear down for a few statements).
Conn = AsyncSession | AsyncConnection


@contextlib.asynccontextmanager
async def transaction(database: Database) -> AsyncIterator[AsyncConnection]:
    """A transaction of its own, outside the group-commit writer: a heartbeat must not
    wait behind a queue of charger writes, or the node would lose its leases under load.

    Raises:
        StoreError: the database failed.
    """
    try:
        async with database.engine.begin() as connection:
            yield connection
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
    session: Conn, *, node_id: str, lease_seconds: float, chargers: int, draining: bool
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


def name_connections(database: Database, node_id: str) -> None:
    """Every new connection of the engine says which node it belongs to (see
    fence_dead_nodes); call before the engine connects."""
    name = APPLICATION_PREFIX + node_id

    def named(connection: Any, _record: Any) -> None:
        connection.run_async(
            lambda c: c.execute("SELECT set_config('application_name', $1, false)", name)
        )

    event.listen(database.engine.sync_engine, "connect", named)


# The backends of a node whose lease ran out that are still in a transaction it began
# while it held the lease: a node frozen (SIGSTOP, a VM pause) in the middle of one.
_FENCEABLE = (
    " FROM pg_stat_activity a JOIN cluster_nodes n ON a.application_name = :app || n.node_id"
    " WHERE a.datname = current_database() AND n.lease_until <= now()"
    " AND a.xact_start < n.lease_until AND a.pid <> pg_backend_pid()"
)


async def fence_dead_nodes(session: Conn) -> list[str]:
    """Terminate the open transactions of nodes whose lease expired; returns those nodes.

    A frozen node's transaction keeps its row locks (the lease row it checked FOR SHARE,
    the chargers it was writing) for as long as it is frozen, and the adopters would wait
    behind them past their own leases. Ending the backend rolls the transaction back, so
    a node that wakes up finds its commit failed and has marked nothing. PostgreSQL lets
    a role end its own backends (pg_terminate_backend), so no extra privilege is needed.
    """
    rows = await session.execute(
        text("SELECT n.node_id, pg_terminate_backend(a.pid)" + _FENCEABLE),
        {"app": APPLICATION_PREFIX},
    )
    return sorted({str(node) for node, ended in rows if ended})


async def acquire(session: Conn, *, name: str, node_id: str, lease_seconds: float) -> int | None:
    """Take a free or expired lease; returns its new generation, None when held by another.

    Waits for the lease row's lock at most a quarter of a lease (a node frozen in a fenced
    commit holds it until fence_dead_nodes ends it): the heartbeat must go on meanwhile.
    """
    await session.execute(
        text("SELECT set_config('lock_timeout', :ms, true)"),
        {"ms": f"{max(int(lease_seconds * 250), 1)}ms"},
    )
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


async def release(session: Conn, *, name: str, node_id: str, generation: int) -> bool:
    """Give a lease up at once (draining, rebalancing): another node may take it now."""
    result = await session.execute(
        text(
            "UPDATE cluster_leases SET node_id = NULL, expires_at = now()"
            " WHERE name = :name AND node_id = :me AND generation = :g"
        ),
        {"name": name, "me": node_id, "g": generation},
    )
    return bool(getattr(result, "rowcount", 0))


async def leave(session: Conn, *, node_id: str) -> None:
    """A clean exit: the node's remaining leases are free and the node is gone."""
    await session.execute(
        text("UPDATE cluster_leases SET node_id = NULL, expires_at = now() WHERE node_id = :me"),
        {"me": node_id},
    )
    await session.execute(text("DELETE FROM cluster_nodes WHERE node_id = :me"), {"me": node_id})


async def dead_nodes(session: Conn) -> list[str]:
    """Nodes whose lease has expired."""
    rows = await session.execute(
        text("SELECT node_id FROM cluster_nodes WHERE lease_until <= now() ORDER BY node_id")
    )
    return [str(node) for node in rows.scalars()]


async def forget_nodes(session: Conn, nodes: Sequence[str]) -> None:
    """Remove dead nodes, but only once fenced: their row is what fence_dead_nodes finds
    them by."""
    await session.execute(
        text(
            "DELETE FROM cluster_nodes WHERE node_id = ANY(:nodes) AND lease_until <= now()"
            " AND node_id NOT IN (SELECT n.node_id" + _FENCEABLE + ")"
        ),
        {"nodes": list(nodes), "app": APPLICATION_PREFIX},
    )


# --- charger ownership -----------------------------------------------------------------------


async def take_charger(session: Conn, *, charge_point_id: str, node_id: str, now: datetime) -> int:
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
    session: Conn, *, charge_point_id: str, node_id: str, generation: int
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


async def let_go_chargers_of(session: Conn, nodes: Sequence[str]) -> list[str]:
    """Chargers held by these (dead) nodes are held by nobody; returns their ids."""
    rows = await session.execute(
        text(
            "UPDATE charger_owners SET node_id = :none WHERE node_id = ANY(:nodes)"
            " RETURNING charge_point_id"
        ),
        {"nodes": list(nodes), "none": NO_NODE},
    )
    return sorted(str(cp) for cp in rows.scalars())


async def let_go_orphans(session: Conn) -> list[str]:
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


async def chargers_held(session: Conn) -> list[tuple[str, str]]:
    """(charger, node) for every charger a live node holds."""
    rows = await session.execute(
        text(
            "SELECT o.charge_point_id, o.node_id FROM charger_owners o JOIN cluster_nodes n"
            " ON n.node_id = o.node_id WHERE n.lease_until > now()"
        )
    )
    return [(str(cp), str(node)) for cp, node in rows]


@dataclass(frozen=True, slots=True)
class Owner:
    node_id: str
    generation: int


async def owner_of(session: Conn, charge_point_id: str) -> Owner | None:
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


@dataclass(frozen=True, slots=True)
class PartitionEvent:
    """A pending event of a partition and how far the relay got with it."""

    event: PendingEvent
    # The generation whose broker session has the event awaiting its PUBREL, or None
    # (core/cluster.py, session_of).
    session: int | None


async def partitions_pending_events(
    session: Conn, *, held: Sequence[int], partitions: int, limit: int
) -> dict[int, list[PartitionEvent]]:
    """The undelivered events of each held partition, oldest first, at most `limit` each,
    in one statement: a node reads every partition it publishes at once (one relay pass
    per node), and each partition's own limit keeps one stuck partition from holding the
    others' rows out of the read."""
    rows = await session.execute(
        text(
            "SELECT p.n, e.id, e.event_id, e.charge_point_id, e.type, e.subject, e.time,"
            " e.data, e.created_at, e.relay_state"
            " FROM unnest(CAST(:held AS integer[])) AS p(n) CROSS JOIN LATERAL"
            " (SELECT id, event_id, charge_point_id, type, subject, time,"
            " CAST(data AS TEXT) AS data, created_at, relay_state FROM outbox_events"
            " WHERE delivered_at IS NULL"
            " AND slot = ANY(ARRAY(SELECT generate_series(p.n, :top, :n)))"
            " ORDER BY id LIMIT :limit) AS e ORDER BY p.n, e.id"
        ),
        {"held": list(held), "top": SLOTS - 1, "n": partitions, "limit": limit},
    )
    pending: dict[int, list[PartitionEvent]] = {}
    for row in rows:
        pending.setdefault(int(row[0]), []).append(
            PartitionEvent(
                event=PendingEvent(
                    id=row[1],
                    event_id=row[2],
                    charge_point_id=row[3],
                    type=row[4],
                    subject=row[5],
                    time=as_utc(row[6]),
                    data=row[7],
                    created_at=as_utc(row[8]),
                ),
                session=session_of(int(row[9])),
            )
        )
    return pending


async def held_leases(session: Conn, *, names: Sequence[str], node_id: str) -> dict[str, int]:
    """The leases among `names` this node holds now, with their generations; locks them
    (FOR SHARE) until the transaction ends, so that nobody can take them meanwhile."""
    rows = await session.execute(
        text(
            "SELECT name, generation FROM cluster_leases WHERE name = ANY(:names)"
            " AND node_id = :me AND expires_at > now() FOR SHARE"
        ),
        {"names": list(names), "me": node_id},
    )
    return {str(name): int(generation) for name, generation in rows}


async def mark_released(session: Conn, *, states: dict[int, int]) -> None:
    """PUBREC received on a generation's session (row id -> its released_state): from now
    on only a PUBREL on that session may be sent for these (MQTT 3.1.1 §4.3.3)."""
    await session.execute(
        text(
            "UPDATE outbox_events o SET relay_state = s.state FROM unnest("
            "CAST(:ids AS bigint[]), CAST(:states AS integer[])) AS s(id, state)"
            " WHERE o.id = s.id"
        ),
        {"ids": list(states), "states": list(states.values())},
    )


async def mark_delivered(session: Conn, *, done: Sequence[tuple[int, datetime]]) -> None:
    """Delivered (row id, when its PUBCOMP came): a relay marks a pass's last PUBCOMPs with
    its next statement, so the time is the PUBCOMP's, not the mark's."""
    await session.execute(
        text(
            "UPDATE outbox_events o SET delivered_at = s.at FROM unnest("
            "CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])) AS s(id, at)"
            " WHERE o.id = s.id"
        ),
        {"ids": [i for i, _ in done], "ats": [at for _, at in done]},
    )


# --- what GET /api/v1/cluster shows ----------------------------------------------------------


async def overview(session: Conn, *, partitions: int) -> dict[str, Any]:
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
