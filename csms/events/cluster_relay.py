"""The cluster relay: one publisher per outbox partition, exactly once to the broker.

A node publishes the partitions whose lease it holds (flows/cluster.py hands them out).
Each lease generation of a partition publishes on an MQTT session of its own (client id
`{prefix}-relay-{n}-g{generation}`, CleanSession 0) at QoS 2, in three steps per batch
(docs/deployment.md, "Exactly once"):

1. PUBLISH each pending row with the packet id derived from its row id, wait for PUBREC.
2. Commit `relay_state = 2 + generation` for the rows with a PUBREC, under the
   partition's lease (fenced: a node that lost the lease commits nothing, sends no PUBREL).
3. PUBREL them in outbox order, wait for PUBCOMP, mark them delivered.

The broker delivers a QoS 2 message once, when its PUBREL arrives (Mosquitto does so;
MQTT 3.1.1 §4.3.3 Method B). A row with no committed PUBREC has had no PUBREL anywhere,
so whatever copies earlier holders left unreleased in their sessions are never delivered,
and the holder publishes it afresh on its own session; a row with a committed PUBREC is
only ever PUBRELed again, on the session that state names (an adopter finishes those
first). So a node's death at any point leaves the adopter nothing it could publish twice,
and a node that lost its lease (frozen past it) cannot take the adopter's session over.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from csms.core.cluster import PACKET_WINDOW, packet_id, session_client_id
from csms.errors import EventPublishError, StoreError
from csms.events.mqtt_session import SessionLink, discard_session, open_session
from csms.events.relay import Relay
from csms.store import cluster
from csms.store.cluster import PartitionEvent
from csms.store.db import Database
from csms.store.outbox import PendingEvent

log = structlog.get_logger("csms.events")

BATCH = 1000
IDLE_POLL = 2.0
PASS_GATHER = 0.05


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
        self._client_prefix = client_prefix
        self._client_id = session_client_id(client_prefix, partition, generation)
        self._clock = clock
        self._timeout = timeout
        self._wake = asyncio.Event()
        self._link: SessionLink | None = None
        # Rows this link sent for the first time: everything else may be in the session.
        self._sent_here: set[int] = set()
        self._resuming = True
        # Rows whose PUBREC this generation committed (or may have: a failed commit), not
        # yet delivered: while there are any, its session must stay for whoever PUBRELs them.
        self._unfinished: set[int] = set()
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
                    if count < BATCH:
                        # Woken by the node's scanner when more is pending; then events
                        # committed within PASS_GATHER go in one pass, since a pass costs
                        # three transactions or more whatever its size.
                        await self._sleep(IDLE_POLL)
                        await asyncio.sleep(PASS_GATHER)
                else:
                    failures += 1
                    await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)) * self._rng.random())
        finally:
            if self._link is not None:
                self._link.close()
                self._link = None
            if not self._unfinished:
                await self._discard(self._client_id)

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
        async with cluster.transaction(self._database) as connection:
            rows = await cluster.partition_pending(connection, slots=self._slots, limit=BATCH)
        if not rows:
            return 0, True
        # Packet ids are unique only within PACKET_WINDOW row ids (core/cluster.py).
        rows = [row for row in rows if row.event.id < rows[0].event.id + PACKET_WINDOW]
        blocked: set[str] = set()
        count = await self._finish_elsewhere(rows, blocked)
        mine = [row for row in rows if row.session in (None, self.generation)]
        if not mine:
            return count, count == len(rows)
        link = await self._connect()
        # PUBCOMP received, not yet marked delivered: marked with the next window's commit.
        unmarked: list[int] = []
        # Mosquitto keeps at most max_inflight_messages (20 by default) unreleased QoS 2
        # messages per session and drops the rest after acknowledging them: send windows.
        for start in range(0, len(mine), self._window):
            window = [
                r
                for r in mine[start : start + self._window]
                if r.event.charge_point_id not in blocked
            ]
            received = await self._publish(link, [row for row in window if row.session is None])
            if received or unmarked:
                await self._commit(released=received, delivered=unmarked, rows=rows)
                count += len(unmarked)
                unmarked = []
            ready = _in_order(window, received, blocked, generation=self.generation)
            unmarked += await self._complete(link, ready, blocked)
        if unmarked:
            await self._commit(released=set(), delivered=unmarked, rows=rows)
            count += len(unmarked)
        return count, count == len(rows)

    async def _commit(
        self, *, released: set[int], delivered: list[int], rows: Sequence[PartitionEvent]
    ) -> None:
        """One transaction per window: state 2 for the PUBRECs just received, fenced by
        the lease (locked FOR SHARE, so an adopter's takeover waits for this commit and
        then sees it), and delivered for the previous window's PUBCOMPs."""
        async with cluster.transaction(self._database) as session:
            if released and not await cluster.holds(
                session, name=self._lease, node_id=self._node_id, generation=self.generation
            ):
                raise LeaseLost(self._lease)
            if released:
                self._unfinished.update(released)
                await cluster.mark_released(
                    session, ids=sorted(released), generation=self.generation
                )
            if delivered:
                await cluster.mark_delivered(session, ids=delivered, now=self._clock())
        if delivered:
            done = set(delivered)
            self._relay.count_delivered([r.event for r in rows if r.event.id in done], done)
            self._sent_here.difference_update(done)
            self._unfinished.difference_update(done)
            self.published += len(done)

    async def _finish_elsewhere(self, rows: Sequence[PartitionEvent], blocked: set[str]) -> int:
        """PUBREL, on the session of the generation that committed their PUBREC, the rows
        an earlier holder left released but undelivered, oldest generation first; returns
        how many were delivered. A charger with a row left over waits for the next pass."""
        elsewhere: dict[int, list[PendingEvent]] = {}
        for row in rows:
            if row.session is not None and row.session != self.generation:
                elsewhere.setdefault(row.session, []).append(row.event)
        count = 0
        for generation, events in sorted(elsewhere.items()):
            client_id = session_client_id(self._client_prefix, self.partition, generation)
            waiting = [event for event in events if event.charge_point_id not in blocked]
            try:
                await self._check_lease()
                link = await open_session(self._url, client_id=client_id, timeout=self._timeout)
            except EventPublishError as exc:
                log.warning("partition_session_unfinished", client_id=client_id, error=str(exc))
                blocked.update(event.charge_point_id for event in events)
                continue
            try:
                done = await self._complete(link, waiting, blocked)
            finally:
                link.close()
            if done:
                await self._commit(released=set(), delivered=done, rows=rows)
                count += len(done)
            log.info("partition_session_finished", client_id=client_id, delivered=len(done))
            if len(done) == len(events) and len(rows) < BATCH:
                # Every row that session held for a PUBREL is delivered: it is garbage.
                await self._discard(client_id)
        return count

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
        # A node frozen past its lease wakes up here: it stops rather than publish more.
        await self._check_lease()
        self._link = await open_session(self._url, client_id=self._client_id, timeout=self._timeout)
        self._sent_here.clear()
        self._resuming = True
        log.info("partition_session_opened", partition=self.partition, client_id=self._client_id)
        return self._link

    async def _discard(self, client_id: str) -> None:
        """Drop a session nobody needs any more (the broker would keep it for ever)."""
        try:
            await discard_session(self._url, client_id=client_id, timeout=min(self._timeout, 2.0))
        except EventPublishError as exc:
            log.info("partition_session_kept", client_id=client_id, error=str(exc))

    async def _check_lease(self) -> None:
        async with cluster.transaction(self._database) as session:
            if not await cluster.holds(
                session, name=self._lease, node_id=self._node_id, generation=self.generation
            ):
                raise LeaseLost(self._lease)

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
    rows: Sequence[PartitionEvent], received: set[int], blocked: set[str], *, generation: int
) -> list[PendingEvent]:
    """The rows that may be PUBRELed now: released before or just acknowledged, and for
    each charger only up to its first row that is neither (its order must hold); such a
    charger is added to `blocked` for the rest of the batch."""
    ready: list[PendingEvent] = []
    for row in rows:
        charger = row.event.charge_point_id
        if charger in blocked:
            continue
        if row.session == generation or row.event.id in received:
            ready.append(row.event)
        else:
            blocked.add(charger)
    return ready
