"""Scale-out, the application side: connection ownership and the node's membership
(heartbeat, leases for the outbox partitions and for the leader's periodic work).

docs/deployment.md describes the model; the SQL is in store/cluster.py, the pure decisions
in core/cluster.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core import cluster as rules
from csms.core.events import Event
from csms.errors import StoreError
from csms.flows.chargers import ChargerFlows
from csms.store import cluster, outbox
from csms.store.db import BulkWrite, Database

log = structlog.get_logger("csms.cluster")


class Ownership:
    """Records which node holds a charger's connection, with each connect and disconnect.

    A connect takes the charger with a higher generation; a disconnect counts only if this
    node and that generation still hold it, so a charger that moved on is not shown
    disconnected by the node it left (its late close, its silence timer).
    """

    def __init__(self, *, database: Database, node_id: str) -> None:
        self._database = database
        self.node_id = node_id
        self._generations: dict[str, int] = {}

    def generation(self, charge_point_id: str) -> int | None:
        """The generation of this node's connection to the charger, if it has one."""
        return self._generations.get(charge_point_id)

    async def connected(
        self, charge_point_id: str, *, write: BulkWrite, events: Sequence[Event], now: datetime
    ) -> None:
        async def job(session: AsyncSession) -> int:
            generation = await cluster.take_charger(
                session, charge_point_id=charge_point_id, node_id=self.node_id, now=now
            )
            await _run(session, write)
            await outbox.add_events(session, events, now=now)
            return generation

        self._generations[charge_point_id] = await self._database.writer.submit(job)

    async def disconnected(
        self, charge_point_id: str, *, write: BulkWrite, events: Sequence[Event], now: datetime
    ) -> None:
        generation = self._generations.pop(charge_point_id, None)
        if generation is None:
            return

        async def job(session: AsyncSession) -> bool:
            held = await cluster.let_go_charger(
                session,
                charge_point_id=charge_point_id,
                node_id=self.node_id,
                generation=generation,
            )
            if held:
                await _run(session, write)
                await outbox.add_events(session, events, now=now)
            return held

        if not await self._database.writer.submit(job):
            log.info("stale_disconnect_ignored", charge_point_id=charge_point_id)


async def _run(session: AsyncSession, write: BulkWrite) -> None:
    dialect = session.get_bind().dialect.name
    for factory, params in write.steps:
        await session.execute(factory(dialect), params)


async def end_connections_of(
    *, database: Database, chargers: ChargerFlows, nodes: Sequence[str] | None, now: datetime
) -> int:
    """The chargers of these nodes (this node's previous life), or with None of every node
    gone or dead, are nobody's: they are disconnected as of when they were last seen,
    with the events of a disconnect."""

    async def job(session: AsyncSession) -> list[str]:
        if nodes is None:
            let_go = await cluster.let_go_orphans(session)
            await cluster.forget_nodes(session, await cluster.dead_nodes(session))
            return let_go
        return await cluster.let_go_chargers_of(session, nodes)

    let_go: list[str] = await database.writer.submit(job)
    if not let_go:
        return 0
    return await chargers.end_lost_connections(now=now, only=let_go)


@dataclass
class MembershipSettings:
    node_id: str
    partitions: int
    heartbeat_interval: float
    lease_seconds: float


@dataclass
class Held:
    """What this node holds now: partition -> lease generation, and the leader's lease."""

    partitions: dict[int, int] = field(default_factory=dict)
    leader: int | None = None


class Membership:
    """The node's heartbeat: renews its leases, takes its share, lets extras go.

    Listeners hear `partition_gained(partition, generation)`, `partition_lost(partition)`
    and `leader_changed(is_leader)`; a partition given away is first stopped by its
    listener (`give_partition`), then released.
    """

    def __init__(
        self,
        settings: MembershipSettings,
        *,
        database: Database,
        chargers: Callable[[], int],
    ) -> None:
        self.settings = settings
        self._database = database
        self._chargers = chargers
        self.held = Held()
        self.draining = False
        self.partition_gained: list[Callable[[int, int], None]] = []
        self.partition_lost: list[Callable[[int], None]] = []
        self.leader_changed: list[Callable[[bool], None]] = []
        # Stops a partition's publisher after its batch: awaited before the lease goes.
        self.give_partition: Callable[[int], asyncio.Future[None]] | None = None
        self.beats = 0
        self._beaten = asyncio.Event()

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    @property
    def is_leader(self) -> bool:
        return self.held.leader is not None

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except StoreError as exc:
                # The leases run out by themselves if this lasts: others adopt them.
                log.warning("cluster_heartbeat_failed", error=str(exc))
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def beat(self) -> None:
        """One heartbeat: renew, notice losses, take and give partitions, elect."""
        s = self.settings
        async with cluster.transaction(self._database) as session:
            beat = await cluster.heartbeat(
                session,
                node_id=s.node_id,
                lease_seconds=s.lease_seconds,
                chargers=self._chargers(),
                draining=self.draining,
            )
            fenced = await cluster.fence_dead_nodes(session)
        if fenced:
            log.warning("dead_node_fenced", nodes=fenced)
        self._notice_losses(beat.held)
        if not self.draining:
            await self._take(beat)
            await self._give_extras(beat)
        self.beats += 1
        self._beaten.set()

    async def wait_beat(self) -> None:
        self._beaten.clear()
        await self._beaten.wait()

    def _notice_losses(self, held: dict[str, int]) -> None:
        for partition, generation in list(self.held.partitions.items()):
            if held.get(rules.partition_lease(partition)) != generation:
                del self.held.partitions[partition]
                log.warning("partition_lost", partition=partition)
                for listener in self.partition_lost:
                    listener(partition)
        if self.held.leader is not None and held.get(rules.LEADER) != self.held.leader:
            self.held.leader = None
            log.warning("leadership_lost")
            for changed in self.leader_changed:
                changed(False)

    async def _take(self, beat: cluster.Beat) -> None:
        s = self.settings
        wanted = rules.partitions_to_take(
            beat.leases, me=s.node_id, partitions=s.partitions, live=beat.live
        )
        names = [rules.partition_lease(p) for p in wanted]
        leader_free = not any(
            lease.name == rules.LEADER and lease.holder is not None and not lease.expired
            for lease in beat.leases
        )
        if leader_free and self.held.leader is None:
            names.insert(0, rules.LEADER)
        for name in names:
            try:
                async with cluster.transaction(self._database) as session:
                    generation = await cluster.acquire(
                        session, name=name, node_id=s.node_id, lease_seconds=s.lease_seconds
                    )
            except StoreError as exc:  # its lock not free in time (fence_dead_nodes)
                log.info("lease_not_taken", lease=name, error=str(exc))
                continue
            if generation is None:
                continue
            if name == rules.LEADER:
                self.held.leader = generation
                log.info("leadership_taken", generation=generation)
                for changed in self.leader_changed:
                    changed(True)
                continue
            partition = rules.partition_of_lease(name)
            assert partition is not None
            self.held.partitions[partition] = generation
            log.info("partition_taken", partition=partition, generation=generation)
            for gained in self.partition_gained:
                gained(partition, generation)

    async def _give_extras(self, beat: cluster.Beat) -> None:
        extras = rules.partitions_to_give(
            beat.leases, me=self.node_id, partitions=self.settings.partitions, live=beat.live
        )
        for partition in extras:
            await self.release_partition(partition)

    async def release_partition(self, partition: int) -> None:
        """Stop publishing the partition after its batch, then free its lease."""
        generation = self.held.partitions.pop(partition, None)
        if generation is None:
            return
        if self.give_partition is not None:
            # wait(), not await: the publisher's end is not this task's cancellation.
            await asyncio.wait([self.give_partition(partition)])
        async with cluster.transaction(self._database) as session:
            await cluster.release(
                session,
                name=rules.partition_lease(partition),
                node_id=self.node_id,
                generation=generation,
            )
        log.info("partition_released", partition=partition)

    async def leave(self) -> None:
        """Draining: every partition handed over, leadership and the node row gone."""
        self.draining = True
        for partition in list(self.held.partitions):
            await self.release_partition(partition)
        if self.held.leader is not None:
            self.held.leader = None
            for changed in self.leader_changed:
                changed(False)
        async with cluster.transaction(self._database) as session:
            await cluster.leave(session, node_id=self.node_id)
        log.info("cluster_left", node_id=self.node_id)
