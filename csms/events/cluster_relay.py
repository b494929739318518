"""The cluster relay: one publisher per outbox partition, exactly once to the broker.

A node publishes the partitions whose lease it holds (flows/cluster.py hands them out).
Each partition publishes on its own MQTT session (client id `{prefix}-relay-{n}`,
CleanSession 0) at QoS 2, in three steps per batch (docs/deployment.md, "Exactly once"):

1. PUBLISH each pending row with the packet id derived from its row id, wait for PUBREC.
2. Commit `relay_state = 2` for the rows with a PUBREC, under the partition's lease
   (fenced: a node that lost the lease commits nothing and sends no PUBREL).
3. PUBREL them in outbox order, wait for PUBCOMP, mark them delivered.

The broker delivers a QoS 2 message once, when its PUBREL arrives (Mosquitto does so;
MQTT 3.1.1 §4.3.3 Method B). A row not yet at state 2 has had no PUBREL, so re-sending its
PUBLISH with the same packet id on the same session is recognised by the broker as the
same message; a row at state 2 is only ever PUBRELed again. So a node's death at any
point leaves the adopter nothing it could publish twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from csms.core.cluster import PACKET_WINDOW, packet_id
from csms.errors import EventPublishError, StoreError
from csms.events.mqtt_session import SessionLink, open_session
from csms.events.relay import Relay
from csms.store import cluster
from csms.store.cluster import PartitionEvent
from csms.store.db import Database
from csms.store.outbox import PendingEvent

log = structlog.get_logger("csms.events")

BATCH = 1000
IDLE_POLL = 2.0


class LeaseLost(Exception):
    """The partition's lease is no longer this node's: stop at once, send nothing more."""


class PartitionRelay:
    """Publishes one partition while this node holds its lease."""

    def __init__(
        self,
        *,
        partition: int,
        partitions: int,
        generation: int,
        node_id: str,
        database: Database,
        relay: Relay,
        mqtt_url: str,
        client_prefix: str,
        clock: Callable[[], datetime],
        timeout: float = 10.0,
        window: int = 20,
    ) -> None:
        self._window = window
        self.partition = partition
        self.generation = generation
        self._lease = f"relay:{partition}"
        self._node_id = node_id
        self._slots = cluster.partition_slots(partition, partitions)
        self._database = database
        self._relay = relay
        self._url = mqtt_url
        self._client_id = f"{client_prefix}-relay-{partition}"
        self._clock = clock
        self._timeout = timeout
        self._wake = asyncio.Event()
        self._link: SessionLink | None = None
        # Rows this link sent for the first time: everything else may be in the session.
        self._sent_here: set[int] = set()
        self._resuming = True
        self._stopping = False
        self._rng = random.Random()
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    def stop_after_batch(self) -> None:
        """Finish the batch in flight, then return (a hand-over or drain)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Publish until stopped or the lease is lost; the link is closed on the way out."""
        failures = 0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    count, complete = await self._pass()
                except LeaseLost:
                    log.warning("partition_lease_lost", partition=self.partition)
                    return
                except (StoreError, EventPublishError) as exc:
                    log.warning("partition_relay_paused", partition=self.partition, error=str(exc))
                    self._drop_link()
                    count, complete = 0, False
                if complete:
                    failures = 0
                    if not count:
                        await self._sleep(IDLE_POLL)
                else:
                    failures += 1
                    await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)) * self._rng.random())
        finally:
            if self._link is not None:
                self._link.close()
                self._link = None

    async def drain(self, *, within: float) -> None:
        """Publish what is pending for at most `within` seconds (clean shutdown)."""
        try:
            async with asyncio.timeout(within):
                while True:
                    count, complete = await self._pass()
                    if not count or not complete:
                        return
        except (TimeoutError, LeaseLost, StoreError, EventPublishError) as exc:
            log.warning("partition_not_drained", partition=self.partition, error=repr(exc))

    async def _pass(self) -> tuple[int, bool]:
        async with self._database.reading() as session:
            rows = await cluster.partition_pending(session, slots=self._slots, limit=BATCH)
        if not rows:
            return 0, True
        # Packet ids are unique only within PACKET_WINDOW row ids (core/cluster.py).
        rows = [row for row in rows if row.event.id < rows[0].event.id + PACKET_WINDOW]
        link = await self._connect()
        completed: list[int] = []
        blocked: set[str] = set()
        # Mosquitto keeps at most max_inflight_messages (20 by default) unreleased QoS 2
        # messages per session and drops the rest after acknowledging them: send windows.
        for start in range(0, len(rows), self._window):
            chunk = [r for r in rows[start : start + self._window]]
            completed += await self._window_pass(link, chunk, blocked)
        if completed:
            async with cluster.transaction(self._database) as session:
                await cluster.mark_delivered(session, ids=completed, now=self._clock())
            done = set(completed)
            self._relay.count_delivered([row.event for row in rows], done)
            self._sent_here.difference_update(done)
            self.published += len(done)
        return len(completed), len(completed) == len(rows)

    async def _window_pass(
        self, link: SessionLink, rows: list[PartitionEvent], blocked: set[str]
    ) -> list[int]:
        """One window: PUBLISH, commit PUBRECs (fenced), PUBREL, PUBCOMP."""
        rows = [row for row in rows if row.event.charge_point_id not in blocked]
        received = await self._publish(link, [row for row in rows if not row.released])
        if received:
            await self._fenced_release(received)
        ready = _in_order(rows, received, blocked)
        return await self._complete(link, ready, blocked)

    async def _publish(self, link: SessionLink, rows: Sequence[PartitionEvent]) -> set[int]:
        """PUBLISH (QoS 2) and wait for PUBRECs; returns the ids acknowledged."""
        sends = []
        for row in rows:
            topic, payload, retain = self._relay.encode(row.event)
            # §3.3.1.1: DUP on a re-send; right after (re)connecting every row may be one,
            # since the session may hold it from an earlier link or node.
            dup = self._resuming or row.event.id in self._sent_here
            sends.append(
                link.publish(
                    packet_id(row.event.id), topic.encode(), payload, retain=retain, dup=dup
                )
            )
            self._sent_here.add(row.event.id)
        self._resuming = False
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        return {
            row.event.id
            for row, outcome in zip(rows, outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        }

    async def _fenced_release(self, ids: set[int]) -> None:
        """Commit state 2 only while holding the lease (the lease row is locked FOR SHARE,
        so an adopter's takeover waits for this commit and then sees it)."""
        async with cluster.transaction(self._database) as session:
            if not await cluster.holds(
                session, name=self._lease, node_id=self._node_id, generation=self.generation
            ):
                raise LeaseLost(self._lease)
            await cluster.mark_released(session, ids=sorted(ids))

    async def _complete(
        self, link: SessionLink, rows: Sequence[PendingEvent], blocked: set[str]
    ) -> list[int]:
        """PUBREL in outbox order; returns the ids whose PUBCOMP came, per charger in order."""
        outcomes = await asyncio.gather(
            *(link.release(packet_id(row.id)) for row in rows), return_exceptions=True
        )
        done: list[int] = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if row.charge_point_id in blocked:
                continue
            if isinstance(outcome, BaseException):
                blocked.add(row.charge_point_id)
                continue
            done.append(row.id)
        return done

    async def _connect(self) -> SessionLink:
        if self._link is not None and not self._link.lost:
            return self._link
        self._drop_link()
        self._link = await open_session(self._url, client_id=self._client_id, timeout=self._timeout)
        self._sent_here.clear()
        self._resuming = True
        log.info("partition_session_opened", partition=self.partition, client_id=self._client_id)
        return self._link

    def _drop_link(self) -> None:
        if self._link is not None:
            self._link.abort()
            self._link = None

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass


def _in_order(
    rows: Sequence[PartitionEvent], received: set[int], blocked: set[str]
) -> list[PendingEvent]:
    """The rows that may be PUBRELed now: released before or just acknowledged, and for
    each charger only up to its first row that is neither (its order must hold); such a
    charger is added to `blocked` for the rest of the batch."""
    ready: list[PendingEvent] = []
    for row in rows:
        charger = row.event.charge_point_id
        if charger in blocked:
            continue
        if row.released or row.event.id in received:
            ready.append(row.event)
        else:
            blocked.add(charger)
    return ready
