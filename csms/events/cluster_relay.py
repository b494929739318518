"""The cluster relay: one pass per node over the outbox partitions it holds, each published
exactly once to the broker.

A node publishes the partitions whose lease it holds (flows/cluster.py hands them out).
Each lease generation of a partition publishes on an MQTT session of its own (client id
`{prefix}-relay-{n}-g{generation}`, CleanSession 0) at QoS 2. One pass covers every held
partition at once, as the standalone relay covers the whole outbox: one read, then windows
of up to `window` events per partition, side by side on the partitions' sessions
(docs/deployment.md, "Exactly once"):

1. PUBLISH each pending row with the packet id derived from its row id, wait for PUBREC.
2. One transaction per window for all the partitions: `relay_state = 2 + generation` for
   the rows with a PUBREC, fenced by each partition's lease (a partition whose lease is no
   longer this node's commits nothing and sends no PUBREL), and delivered for the
   previous window's PUBCOMPs.
3. PUBREL them in outbox order, wait for PUBCOMP (marked delivered with the next commit:
   the next window's, or for the pass's last window the next pass's read, so that a pass
   costs no transaction of its own for its last PUBCOMPs).

The broker delivers a QoS 2 message once, when its PUBREL arrives (Mosquitto does so;
MQTT 3.1.1 §4.3.3 Method B). A row with no committed PUBREC has had no PUBREL anywhere,
so whatever copies earlier holders left unreleased in their sessions are never delivered,
and the holder publishes it afresh on its own session; a row with a committed PUBREC is
only ever PUBRELed again, on the session that state names (an adopter finishes those
first). So a node's death at any point leaves the adopter nothing it could publish twice,
and a node that lost its lease (frozen past it) cannot take the adopter's session over.

A charger's events are all in one partition (core/cluster.py, slot_of), so one set of
blocked chargers serves the whole pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from csms.core.cluster import (
    PACKET_WINDOW,
    packet_id,
    partition_lease,
    released_state,
    session_client_id,
)
from csms.errors import EventPublishError, StoreError
from csms.events.mqtt_session import SessionLink, discard_session, open_session
from csms.events.relay import Relay
from csms.store import cluster
from csms.store.cluster import PartitionEvent
from csms.store.db import Database
from csms.store.outbox import PendingEvent

log = structlog.get_logger("csms.events")

# Rows per partition per pass.
BATCH = 1000
IDLE_POLL = 2.0
# Events committed within this time after a wake go in one pass, since a pass costs two
# transactions or more whatever its size.
PASS_GATHER = 0.05
# A pass's last PUBCOMPs are marked delivered with the next pass's read; when no pass
# follows within this time (the outbox is idle), in a transaction of their own.
MARK_WAIT = 0.1


class LeaseLost(Exception):
    """The partition's lease is no longer this node's: stop at once, send nothing more."""


@dataclass(eq=False)
class HeldPartition:
    """One partition this node publishes: its lease generation and its broker session."""

    partition: int
    generation: int
    client_id: str
    link: SessionLink | None = None
    # Rows this link sent for the first time: everything else may be in the session.
    sent_here: set[int] = field(default_factory=set)
    resuming: bool = True
    # Rows whose PUBREC this generation committed (or may have: a failed commit), not yet
    # delivered: while there are any, its session must stay for whoever PUBRELs them.
    unfinished: set[int] = field(default_factory=set)
    # The lease is gone (noticed by the heartbeat or a fenced commit): send nothing more.
    lost: bool = False
    # Handed over: leaves after the pass in flight; the future says when it has left.
    leaving: asyncio.Future[None] | None = None
    failures: int = 0
    retry_at: float = 0.0

    @property
    def lease(self) -> str:
        return partition_lease(self.partition)

    @property
    def active(self) -> bool:
        return not self.lost and self.leaving is None


@dataclass(eq=False)
class _Work:
    """A held partition's share of one pass."""

    held: HeldPartition
    rows: list[PartitionEvent]
    mine: list[PartitionEvent] = field(default_factory=list)
    count: int = 0
    # PUBCOMP received (and when), not yet marked delivered: marked with the next
    # window's commit, or after the last window with the next pass's read.
    unmarked: list[tuple[PendingEvent, datetime]] = field(default_factory=list)
    received: set[int] = field(default_factory=set)
    ready: list[PendingEvent] = field(default_factory=list)
    failed: bool = False


class NodeRelay:
    """Publishes every partition this node holds, in one pass per node."""

    def __init__(
        self,
        *,
        partitions: int,
        node_id: str,
        database: Database,
        relay: Relay,
        mqtt_url: str,
        client_prefix: str,
        clock: Callable[[], datetime],
        timeout: float = 10.0,
        window: int = 20,
    ) -> None:
        self._partitions = partitions
        self._node_id = node_id
        self._database = database
        self._relay = relay
        self._url = mqtt_url
        self._client_prefix = client_prefix
        self._clock = clock
        self._timeout = timeout
        self._window = window
        self._held: dict[int, HeldPartition] = {}
        # Partitions out of the pass whose link and session are still to be closed.
        self._retired: list[HeldPartition] = []
        # PUBCOMPs of passes before, not yet marked delivered (the broker delivered them:
        # they are marked whoever holds the partition by then).
        self._unmarked: list[tuple[HeldPartition, PendingEvent, datetime]] = []
        self._wake = asyncio.Event()
        # Set when a partition comes or goes (lost, given, or out of the pass).
        self._changed = asyncio.Event()
        self._running = False
        self._closing = False
        self._failures = 0
        self._rng = random.Random()
        self.published = 0

    @property
    def partitions(self) -> list[int]:
        """The partitions in the pass, lowest first."""
        return sorted(p for p, held in self._held.items() if held.active)

    def publishes(self, partition: int) -> bool:
        """Whether the partition is in the pass."""
        held = self._held.get(partition)
        return held is not None and held.active

    def publishes_all(self) -> bool:
        """Whether every partition is in the pass (this node publishes the whole outbox)."""
        return len(self._held) == self._partitions and all(
            held.active for held in self._held.values()
        )

    async def until_shared(self) -> None:
        """Until some partition is out of the pass (another node may publish it)."""
        while self.publishes_all():
            self._changed.clear()
            await self._changed.wait()

    def wake(self) -> None:
        """Events were committed (here, or on another node: NOTIFY)."""
        self._wake.set()

    def add(self, partition: int, generation: int) -> None:
        """This node took the partition's lease at `generation`: publish it from the next
        pass on."""
        previous = self._held.pop(partition, None)
        if previous is not None:
            previous.lost = True
            self._retire(previous)
        self._held[partition] = HeldPartition(
            partition=partition,
            generation=generation,
            client_id=session_client_id(self._client_prefix, partition, generation),
        )
        self._changed.set()
        self._wake.set()

    def lose(self, partition: int) -> None:
        """The partition's lease is gone: nothing more is sent for it, from now on."""
        held = self._held.get(partition)
        if held is not None and not held.lost:
            held.lost = True
            log.warning("partition_lease_lost", partition=partition)
        self._changed.set()
        self._wake.set()

    def give(self, partition: int) -> asyncio.Future[None]:
        """Hand the partition over: it leaves after the pass in flight (a hand-over or a
        drain); the future completes then, and its lease may be released."""
        held = self._held.get(partition)
        if held is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        if held.leaving is None:
            held.leaving = asyncio.get_running_loop().create_future()
        leaving = held.leaving
        if not self._running:
            self._settle()
        self._changed.set()
        self._wake.set()
        return leaving

    async def run(self) -> None:
        """Pass after pass until cancelled or stopped; the links are closed on the way out."""
        self._running = True
        try:
            while not self._closing:
                self._wake.clear()
                await self._close_retired()
                try:
                    full, _ = await self._pass()
                except StoreError as exc:
                    # The database is away: the events wait in it; try again later.
                    log.warning("cluster_relay_paused", error=str(exc))
                    self._drop_links()
                    self._settle()  # a hand-over waits for no database
                    await self._back_off()
                    continue
                except Exception:
                    # A bug must not stop the node publishing for good (its leases are
                    # renewed meanwhile): the events stay, the relay tries again later.
                    log.exception("cluster_relay_failed")
                    self._drop_links()
                    self._settle()
                    await self._back_off()
                    continue
                self._failures = 0
                self._settle()
                if full:
                    continue
                idle = self._idle_seconds()
                if self._unmarked:
                    # The next pass marks them with its read, if one comes soon.
                    woken = await self._sleep(min(MARK_WAIT, idle))
                    if not woken:
                        with contextlib.suppress(StoreError):  # kept for the next pass
                            await self._mark_unmarked()
                        woken = await self._sleep(max(0.0, idle - MARK_WAIT))
                else:
                    woken = await self._sleep(idle)
                if woken:
                    await asyncio.sleep(PASS_GATHER)
        finally:
            self._running = False
            self._settle()
            if self._closing:
                await self._close_retired()  # drain goes on with the others
            else:
                await self.close()

    def stop(self) -> None:
        """Finish the pass in flight, then return from run (draining)."""
        self._closing = True
        self._wake.set()

    async def drain(self, *, within: float) -> None:
        """Publish what is pending for at most `within` seconds (clean shutdown); run must
        have returned."""
        for held in self._held.values():
            held.retry_at = 0.0
        try:
            async with asyncio.timeout(within):
                while True:
                    before = self.published
                    full, complete = await self._pass()
                    if not full or not complete or self.published == before:
                        break
                await self._mark_unmarked()
        except (TimeoutError, StoreError, EventPublishError) as exc:
            log.warning("partitions_not_drained", error=repr(exc))

    async def close(self) -> None:
        """Close every link; drop the sessions nobody needs any more."""
        try:
            await self._mark_unmarked()
        except StoreError as exc:
            # The PUBCOMPs came: whoever publishes the partitions next PUBRELs them again
            # on this node's sessions (kept) and gets a PUBCOMP (MQTT 3.1.1 §4.3.3).
            log.warning("cluster_relay_marks_lost", error=str(exc))
        self._retired += self._held.values()
        self._held = {}
        await self._close_retired()

    # -- one pass -------------------------------------------------------------------------

    async def _pass(self) -> tuple[bool, bool]:
        """One pass over the held partitions; returns whether a partition's read was full
        (more is waiting now), and whether every row read was delivered."""
        now = time.monotonic()
        due = [h for h in self._held.values() if h.active and h.retry_at <= now]
        if not due:
            await self._mark_unmarked()
            return False, True
        unmarked, self._unmarked = self._unmarked, []
        try:
            async with cluster.transaction(self._database) as connection:
                if unmarked:
                    # The last pass's last PUBCOMPs: before the read, which skips them then.
                    await cluster.mark_delivered(
                        connection, done=[(event.id, at) for _, event, at in unmarked]
                    )
                pending = await cluster.partitions_pending_events(
                    connection,
                    held=[h.partition for h in due],
                    partitions=self._partitions,
                    limit=BATCH,
                )
        except BaseException:
            self._unmarked = unmarked + self._unmarked
            raise
        self._marked([(held, event) for held, event, _ in unmarked])
        full = False
        works: list[_Work] = []
        for held in due:
            rows = pending.get(held.partition)
            if not rows:
                held.failures = 0
                continue
            full = full or len(rows) >= BATCH
            # Packet ids are unique only within PACKET_WINDOW row ids (core/cluster.py).
            first = rows[0].event.id
            works.append(_Work(held, [r for r in rows if r.event.id < first + PACKET_WINDOW]))
        if not works:
            return False, True
        blocked: set[str] = set()
        await asyncio.gather(*(self._finish_elsewhere(w, blocked) for w in works))
        for work in works:
            work.mine = [r for r in work.rows if r.session in (None, work.held.generation)]
        await self._connect([w for w in works if w.mine and w.held.active])
        await self._windows([w for w in works if w.mine and w.held.active], blocked)
        complete = True
        for work in works:
            held = work.held
            if work.count == len(work.rows) and not work.failed:
                held.failures = 0
                continue
            complete = False
            held.failures += 1
            backoff = min(5.0, 0.1 * 2 ** min(held.failures, 6)) * self._rng.random()
            held.retry_at = time.monotonic() + backoff
        return full, complete

    async def _windows(self, works: list[_Work], blocked: set[str]) -> None:
        """The partitions' rows in windows side by side: PUBLISH, one fenced commit for
        all, PUBREL."""
        # Mosquitto keeps at most max_inflight_messages (20 by default) unreleased QoS 2
        # messages per session and drops the rest after acknowledging them: send windows.
        start = 0
        while True:
            live = [w for w in works if w.held.active and not w.failed and start < len(w.mine)]
            if not live:
                break
            windows = {
                id(w): [
                    r
                    for r in w.mine[start : start + self._window]
                    if r.event.charge_point_id not in blocked
                ]
                for w in live
            }
            outcomes = await asyncio.gather(
                *(self._publish(w, [r for r in windows[id(w)] if r.session is None]) for w in live)
            )
            for work, received in zip(live, outcomes, strict=True):
                work.received = received
            await self._commit(live, released=True)
            for work in live:
                work.ready = (
                    []
                    if work.held.lost
                    else _in_order(
                        windows[id(work)], work.received, blocked, generation=work.held.generation
                    )
                )
            done = await asyncio.gather(
                *(self._complete_on(w.held.link, w.ready, blocked) for w in live if w.ready)
            )
            now = self._clock()
            for work, events in zip([w for w in live if w.ready], done, strict=True):
                work.unmarked += [(event, now) for event in events]
                work.count += len(events)
            start += self._window
        # The last window's PUBCOMPs: marked with the next pass's read (or on their own
        # when none comes soon), unless the partition leaves or the relay stops after this
        # pass. Left unmarked by a crash, they are PUBRELed again on the same session by
        # whoever publishes the partition next, and the broker answers PUBCOMP without
        # delivering anything (MQTT 3.1.1 §4.3.3, Method B: the message went with the first
        # PUBREL); nothing is PUBLISHed again, since their PUBREC is committed.
        carry = self._running and not self._closing
        for work in works:
            if carry and work.held.active and work.unmarked:
                self._unmarked += [(work.held, event, at) for event, at in work.unmarked]
                work.unmarked = []
        await self._commit([w for w in works if w.unmarked], released=False)

    async def _commit(self, works: Sequence[_Work], *, released: bool) -> None:
        """One transaction for all the partitions: state 2 for the PUBRECs just received,
        fenced by each partition's lease (locked FOR SHARE, so an adopter's takeover waits
        for this commit and then sees it), and delivered for the PUBCOMPs before."""
        acked = [w for w in works if released and w.received and not w.held.lost]
        delivered = [(event.id, at) for w in works for event, at in w.unmarked]
        if not acked and not delivered:
            return
        async with cluster.transaction(self._database) as session:
            states: dict[int, int] = {}
            if acked:
                held = await cluster.held_leases(
                    session, names=[w.held.lease for w in acked], node_id=self._node_id
                )
                for work in acked:
                    if held.get(work.held.lease) != work.held.generation:
                        self._lost(work.held)
                        continue
                    work.held.unfinished.update(work.received)
                    state = released_state(work.held.generation)
                    states.update(dict.fromkeys(work.received, state))
            if states:
                await cluster.mark_released(session, states=states)
            if delivered:
                # A PUBCOMP is the broker's word that it delivered: true whoever holds the
                # lease now.
                await cluster.mark_delivered(session, done=delivered)
        self._marked([(w.held, event) for w in works for event, _ in w.unmarked])
        for work in works:
            work.unmarked = []

    async def _mark_unmarked(self) -> None:
        """Mark delivered, in a transaction of their own, the PUBCOMPs no pass marked."""
        unmarked, self._unmarked = self._unmarked, []
        if not unmarked:
            return
        try:
            async with cluster.transaction(self._database) as session:
                await cluster.mark_delivered(
                    session, done=[(event.id, at) for _, event, at in unmarked]
                )
        except BaseException:
            self._unmarked = unmarked + self._unmarked
            raise
        self._marked([(held, event) for held, event, _ in unmarked])

    def _marked(self, done: Sequence[tuple[HeldPartition, PendingEvent]]) -> None:
        """Rows just marked delivered: counted, followers told, out of their session's
        bookkeeping."""
        if not done:
            return
        ids = {event.id for _, event in done}
        self._relay.count_delivered([event for _, event in done], ids)
        for held, event in done:
            held.sent_here.discard(event.id)
            held.unfinished.discard(event.id)
        self.published += len(done)

    async def _finish_elsewhere(self, work: _Work, blocked: set[str]) -> None:
        """PUBREL, on the session of the generation that committed their PUBREC, the rows
        an earlier holder left released but undelivered, oldest generation first. A charger
        with a row left over waits for the next pass."""
        held = work.held
        elsewhere: dict[int, list[PendingEvent]] = {}
        for row in work.rows:
            if row.session is not None and row.session != held.generation:
                elsewhere.setdefault(row.session, []).append(row.event)
        for generation, events in sorted(elsewhere.items()):
            if held.lost:
                return
            client_id = session_client_id(self._client_prefix, held.partition, generation)
            waiting = [event for event in events if event.charge_point_id not in blocked]
            try:
                await self._check_leases([held])
                if held.lost:
                    return
                link = await open_session(self._url, client_id=client_id, timeout=self._timeout)
            except EventPublishError as exc:
                log.warning("partition_session_unfinished", client_id=client_id, error=str(exc))
                blocked.update(event.charge_point_id for event in events)
                continue
            try:
                done = await self._complete_on(link, waiting, blocked)
            finally:
                link.close()
            if done:
                now = self._clock()
                work.unmarked = [(event, now) for event in done]
                work.count += len(done)
                await self._commit([work], released=False)
            log.info("partition_session_finished", client_id=client_id, delivered=len(done))
            if len(done) == len(events) and len(work.rows) < BATCH:
                # Every row that session held for a PUBREL is delivered: it is garbage.
                await self._discard(client_id)

    async def _publish(self, work: _Work, rows: Sequence[PartitionEvent]) -> set[int]:
        """PUBLISH (QoS 2) and wait for PUBRECs; returns the ids acknowledged."""
        held = work.held
        link = held.link
        if link is None or not rows:
            return set()
        packets = []
        for row in rows:
            topic, payload, retain = self._relay.encode(row.event)
            # §3.3.1.1: DUP on a re-send; right after (re)connecting every row may be one,
            # since the session may hold it from an earlier link or node.
            dup = held.resuming or row.event.id in held.sent_here
            packets.append((packet_id(row.event.id), topic.encode(), payload, retain, dup))
            held.sent_here.add(row.event.id)
        held.resuming = False
        acked = await link.publish(packets)
        return {row.event.id for row in rows if packet_id(row.event.id) in acked}

    async def _complete_on(
        self, link: SessionLink | None, rows: Sequence[PendingEvent], blocked: set[str]
    ) -> list[PendingEvent]:
        """PUBREL in outbox order; returns the rows whose PUBCOMP came, per charger in
        order."""
        if link is None:
            blocked.update(row.charge_point_id for row in rows)
            return []
        acked = await link.release([packet_id(row.id) for row in rows])
        done: list[PendingEvent] = []
        for row in rows:
            if row.charge_point_id in blocked:
                continue
            if packet_id(row.id) not in acked:
                blocked.add(row.charge_point_id)
                continue
            done.append(row)
        return done

    async def _connect(self, works: Sequence[_Work]) -> None:
        """A live link for each partition; those that cannot have one sit this pass out."""
        opening = [w for w in works if w.held.link is None or w.held.link.lost]
        if not opening:
            return
        for work in opening:
            self._drop_link(work.held)
        # A node frozen past its lease wakes up here: it stops rather than publish more.
        await self._check_leases([w.held for w in opening])
        opening = [w for w in opening if not w.held.lost]
        links = await asyncio.gather(
            *(
                open_session(self._url, client_id=w.held.client_id, timeout=self._timeout)
                for w in opening
            ),
            return_exceptions=True,
        )
        for work, link in zip(opening, links, strict=True):
            held = work.held
            if isinstance(link, EventPublishError):
                log.warning("partition_relay_paused", partition=held.partition, error=str(link))
                work.failed = True
                continue
            if isinstance(link, BaseException):
                raise link
            held.link = link
            held.sent_here.clear()
            held.resuming = True
            log.info("partition_session_opened", partition=held.partition, client_id=held.client_id)

    async def _check_leases(self, helds: Sequence[HeldPartition]) -> None:
        """Mark lost the partitions whose lease is no longer this node's at its generation."""
        async with cluster.transaction(self._database) as session:
            held = await cluster.held_leases(
                session, names=[h.lease for h in helds], node_id=self._node_id
            )
        for each in helds:
            if held.get(each.lease) != each.generation:
                self._lost(each)

    def _lost(self, held: HeldPartition) -> None:
        if not held.lost:
            held.lost = True
            self._changed.set()
            log.warning("partition_lease_lost", partition=held.partition)

    # -- partitions coming and going ------------------------------------------------------

    def _settle(self) -> None:
        """Between passes: partitions lost or handed over leave the pass."""
        for partition, held in list(self._held.items()):
            if not held.active:
                del self._held[partition]
                self._retire(held)

    def _retire(self, held: HeldPartition) -> None:
        if held.link is not None:
            held.link.close()
            held.link = None
        self._retired.append(held)
        if held.leaving is not None and not held.leaving.done():
            held.leaving.set_result(None)

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        if any(held is h for h in retired for held, _, _ in self._unmarked):
            # A partition gone with PUBCOMPs still to mark: mark them now, or its session
            # would be kept for rows that need nothing more.
            try:
                await self._mark_unmarked()
            except StoreError as exc:
                log.warning("cluster_relay_marks_late", error=str(exc))
        for held in retired:
            if held.link is not None:
                held.link.close()
                held.link = None
            if not held.unfinished:
                await self._discard(held.client_id)

    async def _discard(self, client_id: str) -> None:
        """Drop a session nobody needs any more (the broker would keep it for ever)."""
        try:
            await discard_session(self._url, client_id=client_id, timeout=min(self._timeout, 2.0))
        except EventPublishError as exc:
            log.info("partition_session_kept", client_id=client_id, error=str(exc))

    def _drop_links(self, helds: Iterable[HeldPartition] | None = None) -> None:
        for held in self._held.values() if helds is None else helds:
            self._drop_link(held)

    @staticmethod
    def _drop_link(held: HeldPartition) -> None:
        if held.link is not None:
            held.link.abort()
            held.link = None

    def _idle_seconds(self) -> float:
        now = time.monotonic()
        waits = [h.retry_at - now for h in self._held.values() if h.active and h.retry_at > now]
        return min([IDLE_POLL, *waits])

    async def _back_off(self) -> None:
        self._failures += 1
        await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self._failures, 6)) * self._rng.random())

    async def _sleep(self, seconds: float) -> bool:
        """Until woken (True) or `seconds` passed (False)."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True


def _in_order(
    rows: Sequence[PartitionEvent], received: set[int], blocked: set[str], *, generation: int
) -> list[PendingEvent]:
    """The rows that may be PUBRELed now: released before or just acknowledged, and for
    each charger only up to its first row that is neither (its order must hold); such a
    charger is added to `blocked` for the rest of the pass."""
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
