"""The webhook delivery worker: reads the outbox behind each subscription's cursor and POSTs
what it wants, signed, at least once and in order per charger.

One task per enabled subscription, so a slow or dead receiver holds back only its own
subscription (never another one, nor the MQTT relay, which reads the outbox on its own).
Within a subscription each charger's events go one at a time, in outbox order; up to
`webhooks.max_in_flight` chargers are delivered side by side. A failed attempt is tried
again on the retry schedule while later events of other chargers go on; the cursor only
moves past events that were delivered, so a crash or SIGKILL means they are sent again
after the restart, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog

from csms.config import WebhookSettings
from csms.core.webhooks import (
    EventFilter,
    Outcome,
    SubscriptionStatus,
    classify,
    delivery_headers,
    exhausted,
    retry_delay,
    signing_secrets,
)
from csms.errors import StoreError
from csms.events.envelope import EventType, encode_stored
from csms.flows.webhooks import WebhookFlows
from csms.store import webhooks
from csms.store.db import Database
from csms.store.outbox import PendingEvent
from csms.store.tables import WebhookSubscription
from csms.store.webhooks import Attempt
from csms.store.webhooks_feed import OutboxFeed
from csms.webhooks.http import Answer, Sender, TargetGuard

log = structlog.get_logger("csms.webhooks")

# Outbox rows read per query, and how many read rows may wait for delivery at once.
READ_BATCH = 500
MAX_QUEUED = 5_000
# Successful attempts are logged, and the cursor saved, after this many or this long.
FLUSH_ATTEMPTS = 500
FLUSH_EVERY = 0.2
IDLE_POLL = 5.0  # also picks up what another csms node wrote
PRUNE_EVERY = timedelta(minutes=5)
STORE_RETRY = 1.0


class _Gone(Exception):
    """The receiver answered 410: stop delivering to this subscription."""


@dataclass(frozen=True)
class _Snapshot:
    """What a worker needs of its subscription row."""

    url: str
    filter: EventFilter
    status: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None

    @classmethod
    def of(cls, row: WebhookSubscription) -> _Snapshot:
        ids = None if row.charge_point_ids is None else frozenset(row.charge_point_ids)
        return cls(
            url=row.url,
            filter=EventFilter(patterns=tuple(row.event_types), charge_point_ids=ids),
            status=row.status,
            secret=row.secret,
            previous_secret=row.previous_secret,
            previous_secret_until=row.previous_secret_until,
        )


class WebhookDispatcher:
    """Runs one `SubscriptionWorker` per enabled subscription."""

    def __init__(
        self,
        *,
        database: Database,
        flows: WebhookFlows,
        settings: WebhookSettings,
        guard: TargetGuard,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._flows = flows
        self._settings = settings
        self._clock = clock
        self.guard = guard
        self._feed = OutboxFeed(database)
        self._workers: dict[str, tuple[SubscriptionWorker, asyncio.Task[None]]] = {}
        self._reload = asyncio.Event()
        self._pruned_at = datetime.min.replace(tzinfo=clock().tzinfo)
        flows.listeners.append(self.changed)

    def wake(self) -> None:
        """New outbox rows were committed."""
        for worker, _ in self._workers.values():
            worker.wake()

    def changed(self, subscription_id: str) -> None:
        """A subscription was created, changed or removed."""
        found = self._workers.get(subscription_id)
        if found is not None:
            found[0].refresh()
        self._reload.set()

    async def run(self) -> None:
        try:
            while True:
                self._reload.clear()
                try:
                    await self._sync()
                    await self._prune()
                except StoreError as exc:
                    log.warning("webhooks_paused", error=repr(exc))
                except Exception:
                    # A bug must not take the OCPP server down: the deliveries wait in the
                    # outbox behind their cursors, and the next pass starts the workers again.
                    log.exception("webhooks_failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_POLL):
                        await self._reload.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every worker; each saves how far it got."""
        running = list(self._workers.values())
        self._workers.clear()
        for _, task in running:
            task.cancel()
        for _, task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._feed.close()  # its connections; a later `run` opens new ones

    async def _sync(self) -> None:
        wanted = set(await self._database.read(webhooks.enabled_subscription_ids))
        for subscription_id in list(self._workers):
            worker, task = self._workers[subscription_id]
            if subscription_id not in wanted or task.done():
                del self._workers[subscription_id]
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("webhook_worker_failed", webhook_id=subscription_id)
        for subscription_id in wanted - set(self._workers):
            worker = SubscriptionWorker(
                subscription_id,
                database=self._database,
                feed=self._feed,
                flows=self._flows,
                settings=self._settings,
                guard=self.guard,
                clock=self._clock,
            )
            task = asyncio.create_task(worker.run(), name=f"webhook-{subscription_id}")
            self._workers[subscription_id] = (worker, task)

    async def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        pruned = await self._flows.prune_log(
            before=now - timedelta(seconds=self._settings.log_retention)
        )
        if pruned:
            log.info("webhook_log_pruned", attempts=pruned)


class SubscriptionWorker:
    """Delivers one subscription's events, following its cursor through the outbox."""

    def __init__(
        self,
        subscription_id: str,
        *,
        database: Database,
        feed: OutboxFeed,
        flows: WebhookFlows,
        settings: WebhookSettings,
        guard: TargetGuard,
        clock: Callable[[], datetime],
    ) -> None:
        self.id = subscription_id
        self._database = database
        self._feed = feed
        self._flows = flows
        self._settings = settings
        self._schedule = settings.retry_delays()
        self._guard = guard
        self._clock = clock
        self._rng = random.Random()
        self._new_rows = asyncio.Event()
        self._refresh = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._snapshot: _Snapshot | None = None
        # Read up to here; `_queued` holds the ids read and not yet done, in order.
        self._read_upto = 0
        self._saved_upto = 0
        self._queued: deque[int] = deque()
        self._done: set[int] = set()
        self._lanes: dict[str, deque[PendingEvent]] = {}
        self._lane_tasks: set[asyncio.Task[None]] = set()
        self._delivered: list[Attempt] = []
        self._gone = False
        self._replays_wanted = True
        self._saving: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._new_rows.set()

    def refresh(self) -> None:
        """The subscription changed: re-read it, look for replays, retry a waiting delivery
        now."""
        self._refresh.set()
        self._replays_wanted = True
        self._new_rows.set()

    async def run(self) -> None:
        sender = Sender(
            guard=self._guard,
            connect_timeout=self._settings.connect_timeout,
            read_timeout=self._settings.read_timeout,
            body_bytes=self._settings.response_body_bytes,
        )
        try:
            await self._loop(sender)
        finally:
            for task in self._lane_tasks:
                task.cancel()
            await asyncio.gather(*self._lane_tasks, return_exceptions=True)
            if self._saving is not None:
                # Not cancelled: a save the writer has taken may commit anyway.
                await asyncio.gather(self._saving, return_exceptions=True)
            await self._save_quietly()
            await sender.close()

    async def _loop(self, sender: Sender) -> None:
        if not await self._load():
            return  # the dispatcher starts this worker again on its next pass
        replays: asyncio.Task[None] | None = None
        saved_at = time.monotonic()
        try:
            while not self._gone and self._snapshot is not None:
                self._new_rows.clear()
                if self._refresh.is_set() and not await self._load():
                    await asyncio.sleep(STORE_RETRY)
                    continue
                if self._replays_wanted and (replays is None or replays.done()):
                    self._replays_wanted = False
                    replays = asyncio.create_task(self._replays(sender))
                read = await self._read(sender)
                due = time.monotonic() - saved_at >= FLUSH_EVERY
                if (due or len(self._delivered) >= FLUSH_ATTEMPTS) and self._saving is None:
                    # Beside the reads, not before them: a save waits for the writer's next
                    # commit, and new events must not wait for that (docs/webhooks.md).
                    self._saving = asyncio.create_task(self._save_in_background())
                    saved_at = time.monotonic()
                if read:
                    continue
                busy = self._queued or self._delivered or self._watermark() > self._saved_upto
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_EVERY if busy else IDLE_POLL):
                        await self._new_rows.wait()
        finally:
            if replays is not None:
                replays.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replays

    async def _save_in_background(self) -> None:
        try:
            await self._save()
        except Exception:
            # What is not saved is saved by the next pass, or sent again after a restart.
            log.exception("webhook_save_failed", webhook_id=self.id)
        finally:
            self._saving = None

    async def _load(self) -> bool:
        """Re-read the subscription; False when the database is away."""
        self._refresh.clear()
        try:
            row = await self._database.read(
                lambda session: webhooks.get_subscription(session, self.id)
            )
        except StoreError as exc:
            log.warning("webhook_store_unavailable", webhook_id=self.id, error=repr(exc))
            self._refresh.set()
            return False
        if row is None or not row.enabled:
            self._snapshot = None
            return True
        if self._snapshot is None:
            self._read_upto = self._saved_upto = row.cursor
        self._snapshot = _Snapshot.of(row)
        return True

    async def _read(self, sender: Sender) -> bool:
        """Read the next outbox rows into the chargers' lanes; True when rows were read."""
        if len(self._queued) >= MAX_QUEUED:
            return False
        snapshot = self._snapshot
        assert snapshot is not None
        try:
            rows = await self._feed.after(after=self._read_upto, limit=READ_BATCH)
        except StoreError as exc:
            log.warning("webhook_store_unavailable", webhook_id=self.id, error=repr(exc))
            return False
        for row in rows:
            self._read_upto = row.id
            if not self._wanted(snapshot, row):
                continue
            self._queued.append(row.id)
            lane = self._lanes.get(row.charge_point_id)
            if lane is None:
                lane = self._lanes[row.charge_point_id] = deque()
                task = asyncio.create_task(self._run_lane(row.charge_point_id, lane, sender))
                self._lane_tasks.add(task)
                task.add_done_callback(self._lane_tasks.discard)
            lane.append(row)
        return bool(rows)

    def _wanted(self, snapshot: _Snapshot, row: PendingEvent) -> bool:
        # A subscription is not told of its own failure: its receiver is the one failing.
        if row.type == EventType.WEBHOOK_FAILING and row.charge_point_id == self.id:
            return False
        return snapshot.filter.accepts(event_type=row.type, charge_point_id=row.charge_point_id)

    async def _run_lane(
        self, charge_point_id: str, lane: deque[PendingEvent], sender: Sender
    ) -> None:
        """One charger's events, strictly one after the other."""
        try:
            while lane:
                row = lane[0]
                await self._deliver(row, sender, replay=False)
                lane.popleft()
                self._done.add(row.id)
        except _Gone:
            self._gone = True
            self._new_rows.set()
        except Exception:
            # The worker stops and starts again from its saved cursor, so this charger's
            # events are neither skipped nor sent out of order.
            log.exception("webhook_lane_failed", webhook_id=self.id)
            self._gone = True
            self._new_rows.set()
        finally:
            if self._lanes.get(charge_point_id) is lane:
                del self._lanes[charge_point_id]

    async def _deliver(self, row: PendingEvent, sender: Sender, *, replay: bool) -> None:
        """Deliver one event, retrying on the schedule until the receiver takes it.

        Raises:
            _Gone: the receiver answered 410.
        """
        body = encode_stored(
            event_id=row.event_id,
            charge_point_id=row.charge_point_id,
            event_type=row.type,
            subject=row.subject,
            time=row.time,
            data_json=row.data,
        )
        failures = 0
        while True:
            snapshot = self._snapshot
            if snapshot is None:  # disabled or deleted meanwhile; the worker is stopping
                raise _Gone
            async with self._slots:
                now = self._clock()
                keys = signing_secrets(
                    current=snapshot.secret,
                    previous=snapshot.previous_secret,
                    previous_until=snapshot.previous_secret_until,
                    now=now,
                )
                headers = delivery_headers(
                    keys, webhook_id=row.event_id, timestamp=int(now.timestamp()), body=body
                )
                answer = await sender.post(snapshot.url, headers=headers, body=body)
            attempt = self._attempt(row, answer, number=failures + 1, replay=replay, at=now)
            outcome = classify(answer.status_code)
            if outcome is Outcome.DELIVERED:
                await self._delivered_now(attempt, snapshot)
                return
            await self._record([attempt])
            if outcome is Outcome.GONE:
                log.warning("webhook_gone", webhook_id=self.id, event_id=row.event_id)
                await self._flows.mark_gone(attempt, now=self._clock())
                raise _Gone
            failures += 1
            log.info(
                "webhook_attempt_failed",
                webhook_id=self.id,
                event_id=row.event_id,
                attempt=failures,
                status_code=answer.status_code,
                error=answer.error,
            )
            if exhausted(self._schedule, failures=failures) and snapshot.status == "active":
                await self._flows.mark_failing(attempt, now=self._clock())
                await self._load()
            delay = retry_delay(self._schedule, failures=failures, rand=self._rng.random())
            await self._pause(delay)

    async def _delivered_now(self, attempt: Attempt, snapshot: _Snapshot) -> None:
        if attempt.replay:
            await self._record([attempt])
        else:
            self._delivered.append(attempt)
        if snapshot.status == SubscriptionStatus.FAILING:
            await self._flows.mark_active(self.id, now=self._clock())
            await self._load()

    def _attempt(
        self, row: PendingEvent, answer: Answer, *, number: int, replay: bool, at: datetime
    ) -> Attempt:
        return Attempt(
            subscription_id=self.id,
            outbox_id=row.id,
            event_id=row.event_id,
            event_type=row.type,
            charge_point_id=row.charge_point_id,
            attempt=number,
            status_code=answer.status_code,
            error=answer.error,
            latency_ms=answer.latency_ms,
            response_body=answer.body,
            replay=replay,
            attempted_at=at,
        )

    async def _pause(self, seconds: float) -> None:
        """Wait before a retry; a change to the subscription (a fixed URL) cuts it short."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._refresh.wait()
        if self._refresh.is_set():
            await self._load()

    def _watermark(self) -> int:
        """The highest outbox id up to which every wanted event was delivered."""
        while self._queued and self._queued[0] in self._done:
            self._done.discard(self._queued.popleft())
        return self._queued[0] - 1 if self._queued else self._read_upto

    async def _save(self) -> None:
        """Log delivered attempts and advance the cursor, together."""
        upto = self._watermark()
        if not self._delivered and upto <= self._saved_upto:
            return
        attempts, self._delivered = self._delivered, []
        try:
            await self._flows.record(
                subscription_id=self.id,
                attempts=attempts,
                upto=upto if upto > self._saved_upto else None,
            )
        except StoreError as exc:
            log.warning("webhook_store_unavailable", webhook_id=self.id, error=repr(exc))
            self._delivered[:0] = attempts
            return
        self._saved_upto = max(self._saved_upto, upto)

    async def _save_quietly(self) -> None:
        try:
            await self._save()
        except Exception as exc:  # stopping: what is not saved is sent again next time
            log.warning("webhook_progress_not_saved", webhook_id=self.id, error=repr(exc))

    async def _record(self, attempts: list[Attempt]) -> None:
        try:
            await self._flows.record(subscription_id=self.id, attempts=attempts, upto=None)
        except StoreError as exc:
            log.warning("webhook_attempt_not_logged", webhook_id=self.id, error=repr(exc))

    async def _replays(self, sender: Sender) -> None:
        """Deliver the pending replays of this subscription, oldest first."""
        try:
            await self._replay_all(sender)
        except _Gone:
            self._gone = True
            self._new_rows.set()
        except StoreError as exc:
            log.warning("webhook_replay_paused", webhook_id=self.id, error=repr(exc))
            self._replays_wanted = True

    async def _replay_all(self, sender: Sender) -> None:
        pending = await self._flows.replays(self.id)
        for replay_id, first_id, last_id in pending:
            after = first_id - 1
            while after < last_id:
                rows = await self._database.read(
                    partial(webhooks.events_between, after=after, last=last_id, limit=READ_BATCH)
                )
                snapshot = self._snapshot
                if snapshot is None:
                    return
                for row in rows:
                    if self._wanted(snapshot, row) or first_id == last_id:
                        await self._deliver(row, sender, replay=True)
                after = rows[-1].id if rows else last_id
                await self._flows.replay_progress(
                    replay_id=replay_id, done_through=after, last_id=last_id
                )
