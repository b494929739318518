"""The outbox relay: publishes committed events in order per charger, at least once.

An event is marked delivered only after the broker's PUBACK. Events of different chargers
are published concurrently, so one charger's trouble does not hold back the others; a
charger's own events go strictly in outbox order, stopping at its first failure.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol, runtime_checkable

import structlog

from csms.errors import StoreError
from csms.events.envelope import (
    EventType,
    encode_stored,
    event_topic,
    is_retained,
    topic_level,
)
from csms.events.fanout import EventFanout, LiveEvent
from csms.metrics import Metrics
from csms.store import outbox, webhooks
from csms.store.db import Database
from csms.store.outbox import PendingEvent

log = structlog.get_logger("csms.events")

# Rows per pass: each pass waits for its last PUBACK and commits one delivered-mark, so
# small passes leave the connection idle (500: ~8k events/s drained, 2000: ~20k).
BATCH = 2000
IDLE_POLL = 5.0  # also picks up what another process left undelivered
RETENTION = timedelta(days=1)
# How long an enabled webhook subscription may keep delivered rows it has not had yet.
WEBHOOK_HOLD = timedelta(days=3)
PRUNE_EVERY = timedelta(minutes=5)
TOPICS_CACHED = 50_000
# Events encoded and sent between two yields to the event loop (`_publish`).
YIELD_EVERY = 100


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> None: ...


@runtime_checkable
class PipelinedPublisher(Protocol):
    """A publisher that can start a publish without a task (csms.events.mqtt.Publisher)."""

    def publish_nowait(
        self, topic: str, payload: bytes, *, retain: bool
    ) -> asyncio.Future[None] | None: ...


class Relay:
    """Reads undelivered outbox rows and publishes them as CloudEvents."""

    def __init__(
        self,
        *,
        database: Database,
        publisher: Publisher,
        topic_prefix: str,
        clock: Callable[[], datetime],
        retention: timedelta = RETENTION,
        metrics: Metrics | None = None,
        fanout: EventFanout | None = None,
        webhook_hold: timedelta = WEBHOOK_HOLD,
    ) -> None:
        self._metrics = metrics or Metrics()
        self.fanout = EventFanout() if fanout is None else fanout
        self._database = database
        self._publisher = publisher
        self._publish_nowait = (
            publisher.publish_nowait if isinstance(publisher, PipelinedPublisher) else None
        )
        self._prefix = topic_prefix
        self._clock = clock
        self._retention = retention
        self._webhook_hold = webhook_hold
        self._wake = asyncio.Event()
        self._topics: dict[tuple[str, EventType], str] = {}
        self._failures = 0
        self._rng = random.Random()
        self._pruned_at = datetime.min.replace(tzinfo=UTC)
        # Called with the number of events just marked delivered.
        self.listeners: list[Callable[[int], None]] = []

    def wake(self) -> None:
        """New events were committed."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                published, complete = await self._pass()
            except StoreError as exc:
                # The database is away: the events wait in it; try again later.
                log.warning("relay_paused", error=repr(exc))
                published, complete = 0, False
            except Exception:
                # A bug must not take the OCPP server down with the relay: the events stay
                # in the outbox, and the relay tries again after a back-off.
                log.exception("relay_failed")
                published, complete = 0, False
            if not published and complete:
                if self._clock() - self._pruned_at > PRUNE_EVERY:
                    try:
                        await self._prune()
                    except StoreError as exc:
                        # The database went away between the pass and the prune: pruning
                        # waits for the next round; it must not end the process.
                        log.warning("outbox_prune_paused", error=repr(exc))
                await self._sleep(IDLE_POLL)
            elif not complete:
                self._failures += 1
                await asyncio.sleep(self._backoff())
            else:
                self._failures = 0

    async def flush(self, *, within: float) -> None:
        """Publish what is pending now, for at most `within` seconds (clean shutdown)."""
        try:
            async with asyncio.timeout(within):
                while True:
                    published, complete = await self._pass()
                    if not published or not complete:
                        return
        except TimeoutError:
            log.warning("events_left_in_outbox", reason="broker slow or unreachable at shutdown")

    async def _pass(self) -> tuple[int, bool]:
        """One batch: returns how many were published, and whether all of the batch were."""
        # Not pinged first: a pass follows every batch (Database.read says what it saves).
        rows = await self._database.read(partial(outbox.pending, limit=BATCH), pinged=False)
        if not rows:
            return 0, True
        if len(rows) == BATCH or self._failures:
            async with self._database.reading() as session:
                count, oldest = await outbox.backlog(session)
            age = None if oldest is None else (self._clock() - oldest).total_seconds()
            log.info("outbox_backlog", events=count, oldest_age_seconds=age)
        messages: list[tuple[str, bytes, bool]] = []
        delivered = await self._publish(rows, messages)
        if delivered:
            await self._database.writer.submit(
                partial(outbox.mark_delivered, ids=delivered, now=self._clock())
            )
            self._delivered(rows, set(delivered), [payload for _, payload, _ in messages])
            for listener in self.listeners:
                listener(len(delivered))
        return len(delivered), len(delivered) == len(rows)

    async def _publish(
        self, rows: Sequence[PendingEvent], messages: list[tuple[str, bytes, bool]]
    ) -> list[int]:
        """Publish pipelined, in outbox order; delivered = each charger's events before its
        first failure. `messages` gets each row's topic, CloudEvent and retain flag.

        One MQTT connection keeps them in order (MQTT 3.1.1 §4.6), so they need not wait
        for each other's PUBACK; an event counts as delivered only with its own PUBACK.
        Chargers do not wait for each other: a failed or stuck publish of one charger
        leaves the others' events delivered.
        """
        sends: list[asyncio.Future[None]] = []
        for start in range(0, len(rows), YIELD_EVERY):
            if start:
                # A pass of 2,000 events encoded at once held the event loop for 40-160 ms
                # under P2's load (every charger's answer waiting): the tail of issue 20. The
                # publishes still go out in order, on the one connection.
                await asyncio.sleep(0)
            encoded = [self._message(row) for row in rows[start : start + YIELD_EVERY]]
            messages += encoded
            sends += [self._send(message) for message in encoded]
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        delivered: list[int] = []
        failed: set[str] = set()
        for row, outcome in zip(rows, outcomes, strict=True):
            if row.charge_point_id in failed:
                continue
            if isinstance(outcome, BaseException):
                log.warning("event_publish_failed", event_id=row.event_id, error=repr(outcome))
                failed.add(row.charge_point_id)
                continue
            delivered.append(row.id)
        return delivered

    def _delivered(
        self,
        rows: Sequence[PendingEvent],
        delivered: set[int],
        payloads: Sequence[bytes] | None = None,
    ) -> None:
        """Count the delivered events, their lag since commit, and hand them to followers
        (the load balancer always follows): with the CloudEvents as published, `payloads`
        (one per row), else encoded here."""
        now = self._clock()
        done = [row for row in rows if row.id in delivered]
        self._metrics.events_published.inc(len(done))
        lag = self._metrics.relay_lag_seconds
        for row in done:
            lag.observe(max(0.0, (now - row.created_at).total_seconds()))
        if self.fanout.followed:
            if payloads is None:
                live = [LiveEvent(r.charge_point_id, r.type, self._message(r)[1]) for r in done]
            else:
                live = [
                    LiveEvent(row.charge_point_id, row.type, payload)
                    for row, payload in zip(rows, payloads, strict=True)
                    if row.id in delivered
                ]
            self.fanout.publish(live)

    def _send(self, message: tuple[str, bytes, bool]) -> asyncio.Future[None]:
        """Start publishing an encoded row: on the open connection at once, else in a task."""
        topic, payload, retain = message
        if self._publish_nowait is not None:
            sent = self._publish_nowait(topic, payload, retain=retain)
            if sent is not None:
                return sent
        return asyncio.ensure_future(self._publisher.publish(topic, payload, retain=retain))

    def _message(self, row: PendingEvent) -> tuple[str, bytes, bool]:
        payload = encode_stored(
            event_id=row.event_id,
            charge_point_id=row.charge_point_id,
            event_type=row.type,
            subject=row.subject,
            time=row.time,
            data_json=row.data,
        )
        try:
            event_type = EventType(row.type)
        except ValueError:
            # Written by a newer csms sharing this database: publish it as it is.
            raw = f"{self._prefix}/events/{topic_level(row.charge_point_id)}/{row.type}"
            return raw, payload, False
        topic = self._topics.get((row.charge_point_id, event_type))
        if topic is None:
            if len(self._topics) > TOPICS_CACHED:
                self._topics.clear()
            topic = event_topic(self._prefix, row.charge_point_id, event_type)
            self._topics[row.charge_point_id, event_type] = topic
        return topic, payload, is_retained(event_type)

    def encode(self, row: PendingEvent) -> tuple[str, bytes, bool]:
        """The topic, CloudEvent and retain flag of a row (the cluster relay's too)."""
        return self._message(row)

    def count_delivered(self, rows: Sequence[PendingEvent], delivered: set[int]) -> None:
        """Metrics and live followers for rows another relay delivered (cluster mode)."""
        self._delivered(rows, delivered)
        for listener in self.listeners:
            listener(len(delivered))

    async def prune(self) -> None:
        """Delete delivered events past retention (cluster mode: the leader's job)."""
        await self._prune()

    def _backoff(self) -> float:
        ceiling = min(30.0, 0.5 * float(2 ** min(self._failures, 6)))
        return ceiling / 2 + self._rng.random() * ceiling / 2

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _prune(self) -> None:
        self._pruned_at = self._clock()
        now = self._clock()
        keep_after = await self._database.read(webhooks.oldest_needed)
        pruned = await self._database.writer.submit(
            partial(
                outbox.prune,
                delivered_before=now - self._retention,
                keep_after=keep_after,
                held_before=now - self._webhook_hold,
            )
        )
        if pruned:
            log.info("outbox_pruned", events=pruned)
