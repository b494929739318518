"""A node's cluster runtime: membership, the partitions it publishes, the leader's work,
forwarded commands, and the hand-over at SIGTERM (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import structlog

from csms.cluster.forward import Forwarder
from csms.config import Settings
from csms.core.cluster import slot_of
from csms.errors import StoreError
from csms.events.cluster_relay import NodeRelay
from csms.events.fanout import EventFanout, LiveEvent
from csms.events.mqtt import messages
from csms.events.relay import Publisher, Relay
from csms.flows.balancing import FOLLOWED_EVENTS
from csms.flows.chargers import ChargerFlows
from csms.flows.cluster import Membership, MembershipSettings, Ownership, end_connections_of
from csms.flows.commands import ChargerLink, Commands
from csms.store import cluster
from csms.store.db import Database
from csms.store.signal import CommitSignal

log = structlog.get_logger("csms.cluster")

PRUNE_EVERY = timedelta(minutes=5)
METER_VALUES = "meter.values"
Work = Callable[[], Coroutine[Any, Any, None]]


class ClusterNode:
    """Everything cluster mode adds to one csms process."""

    def __init__(
        self,
        config: Settings,
        *,
        database: Database,
        relay: Relay,
        chargers: ChargerFlows,
        online: Mapping[str, ChargerLink],
        commands: Commands,
        publisher: Publisher,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings = config.cluster
        self.node_id = settings.node
        self._mqtt_url = config.mqtt.url
        self._prefix = topic_prefix = config.mqtt.topic_prefix
        self._database = database
        self._relay = relay
        self._chargers = chargers
        self._clock = clock
        self._online = online
        # Before the engine's first connection: the others fence this node by this name.
        cluster.name_connections(database, self.node_id)
        self.ownership = Ownership(database=database, node_id=self.node_id)
        chargers.ownership = self.ownership
        self.membership = Membership(
            MembershipSettings(
                node_id=self.node_id,
                partitions=settings.partitions,
                heartbeat_interval=settings.heartbeat_interval,
                lease_seconds=settings.lease_seconds,
            ),
            database=database,
            chargers=lambda: len(online),
        )
        self.forwarder = Forwarder(
            url=config.mqtt.url,
            topic_prefix=topic_prefix,
            node_id=self.node_id,
            publisher=publisher,
            chargers=online,
            owner_of=self._owner_of,
            call_timeout=config.ocpp.call_timeout,
            queue_size=config.ocpp.command_queue_size,
        )
        commands.remote = self.forwarder
        self.signal = CommitSignal(config.database.url)
        self.signal.listeners.append(self.wake)
        self.signal.alone = lambda: len(self.membership.held.partitions) == settings.partitions
        database.writer.listeners += [self.wake, self.signal.committed]
        # One relay pass per node over all the partitions it holds (docs/deployment.md).
        self.partition_relay = NodeRelay(
            partitions=settings.partitions,
            node_id=self.node_id,
            database=database,
            relay=relay,
            mqtt_url=self._mqtt_url,
            client_prefix=topic_prefix,
            clock=clock,
            window=settings.mqtt_inflight,
        )
        self._relaying: asyncio.Task[None] | None = None
        # The events of the partitions other nodes publish, as the broker delivers them:
        # the leader's balancer follows these beside its own (follow_other_partitions).
        self.other_partitions = EventFanout()
        # Chargers connected to other nodes, as the leader learns from the broker.
        self._elsewhere: set[str] = set()
        self.leader_work: list[tuple[str, Work]] = []
        self._leading: list[asyncio.Task[None]] = []
        self._lead_changed = asyncio.Event()
        self.membership.partition_gained.append(self.partition_relay.add)
        self.membership.partition_lost.append(self.partition_relay.lose)
        self.membership.leader_changed.append(lambda _: self._lead_changed.set())
        self.membership.give_partition = self.partition_relay.give

    @property
    def partition_count(self) -> int:
        return self.settings.partitions

    async def start(self) -> None:
        """Before accepting chargers: end this node's connections of a previous life, and
        announce the node (a first heartbeat, which may already take partitions)."""
        ended = await end_connections_of(
            database=self._database,
            chargers=self._chargers,
            nodes=[self.node_id],
            now=self._clock(),
        )
        if ended:
            log.warning("lost_connections_ended", chargers=ended)
        await self.membership.beat()

    async def run(self) -> None:
        """Heartbeats and forwarded commands, until cancelled."""
        # Not in the group: cancelling run at shutdown must leave the relay to drain().
        self._relaying = asyncio.create_task(self.partition_relay.run(), name="cluster-relay")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.membership.run(), name="cluster-heartbeat")
            tasks.create_task(self.forwarder.run(), name="cluster-forwarder")
            tasks.create_task(self.signal.run(), name="cluster-commit-signal")

    async def lead(self) -> None:
        """Run the leader's work (timers, deliveries, sweeps) while this node is leader."""
        try:
            while True:
                self._lead_changed.clear()
                if self.membership.is_leader and not self._leading:
                    log.info("leader_work_started", node_id=self.node_id)
                    self._leading = [
                        asyncio.create_task(work(), name=name) for name, work in self._duties()
                    ]
                elif not self.membership.is_leader and self._leading:
                    await self._stop_leading()
                await self._lead_changed.wait()
        finally:
            await self._stop_leading()

    def wake(self) -> None:
        """Events were committed (here, or elsewhere: NOTIFY): the relay looks."""
        self.partition_relay.wake()

    async def drain(self, *, within: float) -> None:
        """SIGTERM, after the chargers were closed: publish what is pending in the held
        partitions, hand them over, and leave."""
        self.forwarder.closing = True
        self.membership.draining = True
        self.partition_relay.stop()
        try:
            async with asyncio.timeout(within):
                if self._relaying is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(self._relaying)
                await self.partition_relay.drain(within=within)
        except TimeoutError:
            log.warning("events_left_in_outbox", reason="drain took too long; others adopt them")
        try:
            await self.membership.leave()
        except StoreError as exc:
            log.warning("cluster_leave_failed", error=str(exc))
        await self.partition_relay.close()

    # -- the leader's work ------------------------------------------------------------------

    def online_anywhere(self) -> Mapping[str, object]:
        """The chargers connected to any node: this node's, and while leader those the
        others hold (follow_other_partitions keeps that set)."""
        return _Anywhere(self._online, self._elsewhere)

    async def follow_other_partitions(self) -> None:
        """While leader: hand `other_partitions` the balancer's events of the partitions
        this node does not publish, taken from the broker (one subscription per type), so
        that the balancer hears a session start on any node within its coalescing time,
        not at its next tick. The events of the partitions this node publishes reach it
        from the relay; a partition changing hands meanwhile may cost one event, which the
        tick then covers."""
        self._elsewhere.clear()
        try:
            async with asyncio.TaskGroup() as tasks:
                for kind in FOLLOWED_EVENTS:
                    subscribed = asyncio.Event()
                    tasks.create_task(self._follow(kind, subscribed), name=f"follow-{kind}")
                    await subscribed.wait()
                # Subscribed first, then read: a connect in between is in one or the other.
                try:
                    held = await self._database.read(cluster.chargers_held)
                except StoreError as exc:
                    log.warning("held_chargers_not_read", error=str(exc))
                else:
                    self._elsewhere.update(cp for cp, node in held if node != self.node_id)
        finally:
            self._elsewhere.clear()

    async def _follow(self, kind: str, subscribed: asyncio.Event) -> None:
        events = f"{self._prefix}/events/"
        topic_filter = f"{events}+/{kind}"
        if kind == METER_VALUES:
            # Every MeterValues of the cluster, and of use only from the partitions other
            # nodes publish (the balancer hears its own from the relay): not subscribed
            # while this node publishes every partition (a cluster of one node, or the
            # only survivor), when each would cost a PUBACK and be dropped. One missed
            # while subscribing is covered by the charger's next (or the tick).
            subscribed.set()
            while True:
                await self.partition_relay.until_shared()
                # An async generator (closing it ends the subscription at once).
                stream = cast(
                    AsyncGenerator[tuple[str, bytes], None], messages(self._mqtt_url, topic_filter)
                )
                async with contextlib.aclosing(stream):
                    async for topic, payload in stream:
                        self._followed(kind, events, topic, payload)
                        if self.partition_relay.publishes_all():
                            break
        async for topic, payload in messages(
            self._mqtt_url, topic_filter, on_subscribed=subscribed.set
        ):
            self._followed(kind, events, topic, payload)

    def _followed(self, kind: str, events: str, topic: str, payload: bytes) -> None:
        # {prefix}/events/{charge point, %-escaped: envelope.topic_level}/{type}
        charge_point_id = urllib.parse.unquote(topic[len(events) : -len(kind) - 1])
        # A charger's connect and disconnect events are in one partition, in order; a
        # stale disconnect of a node it left has none (flows/cluster.py, Ownership).
        if kind == "chargepoint.connected":
            self._elsewhere.add(charge_point_id)
        elif kind == "chargepoint.disconnected":
            self._elsewhere.discard(charge_point_id)
        partition = slot_of(charge_point_id) % self.settings.partitions
        if not self.partition_relay.publishes(partition):
            self.other_partitions.publish([LiveEvent(charge_point_id, kind, payload)])

    def _duties(self) -> list[tuple[str, Work]]:
        return [*self.leader_work, ("dead-node-sweep", self._sweep), ("outbox-prune", self._prune)]

    async def _stop_leading(self) -> None:
        leading, self._leading = self._leading, []
        for task in leading:
            task.cancel()
        if leading:
            await asyncio.gather(*leading, return_exceptions=True)
            log.info("leader_work_stopped", node_id=self.node_id)

    async def _sweep(self) -> None:
        """The chargers of dead nodes are disconnected (their leases simply expire)."""
        while True:
            try:
                ended = await end_connections_of(
                    database=self._database, chargers=self._chargers, nodes=None, now=self._clock()
                )
            except StoreError as exc:
                log.warning("dead_node_sweep_failed", error=str(exc))
            else:
                if ended:
                    log.warning("dead_node_chargers_ended", chargers=ended)
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY.total_seconds())
            try:
                await self._relay.prune()
            except StoreError as exc:
                log.warning("outbox_prune_failed", error=str(exc))

    async def _owner_of(self, charge_point_id: str) -> str | None:
        owner = await self._database.read(lambda s: cluster.owner_of(s, charge_point_id))
        return None if owner is None else owner.node_id


class _Anywhere(Mapping[str, object]):
    """This node's connections, plus the chargers other nodes hold (by id only)."""

    def __init__(self, here: Mapping[str, object], elsewhere: set[str]) -> None:
        self._here = here
        self._elsewhere = elsewhere

    def __contains__(self, key: object) -> bool:
        return key in self._here or key in self._elsewhere

    def __getitem__(self, key: str) -> object:
        if key in self._here:
            return self._here[key]
        if key in self._elsewhere:
            return key
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._here
        yield from (cp for cp in self._elsewhere if cp not in self._here)

    def __len__(self) -> int:
        return len(self._here) + sum(1 for cp in self._elsewhere if cp not in self._here)
