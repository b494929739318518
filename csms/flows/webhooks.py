"""Webhook subscriptions: create, change, rotate, replay, and the status changes deliveries
cause (`webhook.failing` goes out with the change that marks a subscription failing)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.webhooks import SubscriptionStatus, format_secret
from csms.events import build
from csms.store import outbox, webhooks
from csms.store.db import Database
from csms.store.tables import WebhookDelivery, WebhookSubscription
from csms.store.webhooks import Attempt

# Checks that csms may call a URL (scheme, host, the addresses it resolves to).
TargetCheck = Callable[[str], Awaitable[None]]
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh `whsec_` secret of 32 random bytes (Standard Webhooks: at least 24)."""
    return format_secret(secrets.token_bytes(SECRET_BYTES))


@dataclass(frozen=True)
class SubscriptionChange:
    """What an operator sets with PUT; `secret` None keeps (or, on creation, generates) one."""

    url: str
    event_types: tuple[str, ...]
    charge_point_ids: tuple[str, ...] | None
    enabled: bool
    description: str | None
    secret: str | None


@dataclass(frozen=True)
class PutOutcome:
    created: bool
    subscription: WebhookSubscription
    # The secret, only when it was created or set by this PUT: shown once.
    secret: str | None


@dataclass(frozen=True)
class Rotation:
    secret: str
    previous_valid_until: datetime


@dataclass(frozen=True)
class ReplayRange:
    """Outbox rows to deliver again: ids `first_id`..`last_id`, `events` of them."""

    replay_id: int
    first_id: int
    last_id: int
    events: int


class WebhookFlows:
    """Every change to a webhook subscription, and the listeners told of it."""

    def __init__(
        self,
        *,
        database: Database,
        check_target: TargetCheck,
        rotation_overlap: timedelta,
    ) -> None:
        self._database = database
        self._writer = database.writer
        self._check_target = check_target
        self._overlap = rotation_overlap
        # Called with a subscription id after it changed (the delivery worker re-reads it).
        self.listeners: list[Callable[[str], None]] = []

    def _changed(self, subscription_id: str) -> None:
        for listener in self.listeners:
            listener(subscription_id)

    # -- the operator's API ----------------------------------------------------------------

    async def put(
        self, *, subscription_id: str, change: SubscriptionChange, now: datetime
    ) -> PutOutcome:
        """Create or replace a subscription.

        Raises:
            WebhookTargetRefused: csms will not call the URL (422).
            StoreError: the database failed; nothing changed.
        """
        await self._check_target(change.url)
        outcome: PutOutcome = await self._writer.submit(
            partial(self._put, subscription_id=subscription_id, change=change, now=now)
        )
        self._changed(subscription_id)
        return outcome

    async def _put(
        self,
        session: AsyncSession,
        *,
        subscription_id: str,
        change: SubscriptionChange,
        now: datetime,
    ) -> PutOutcome:
        existing = await webhooks.get_subscription(session, subscription_id)
        values: dict[str, Any] = {
            "url": change.url,
            "event_types": list(change.event_types),
            "charge_point_ids": None
            if change.charge_point_ids is None
            else list(change.charge_point_ids),
            "enabled": change.enabled,
            "description": change.description,
        }
        shown = change.secret
        if existing is None and shown is None:
            shown = new_secret()
        if shown is not None:
            values["secret"] = shown
        values.update(_status_for(existing, change))
        created = await webhooks.put_subscription(
            session, subscription_id=subscription_id, values=values, now=now
        )
        row = await webhooks.get_subscription(session, subscription_id)
        assert row is not None
        return PutOutcome(created=created, subscription=row, secret=shown)

    async def get(self, subscription_id: str) -> WebhookSubscription | None:
        return await self._database.read(
            partial(webhooks.get_subscription, subscription_id=subscription_id)
        )

    async def page(self, *, limit: int, offset: int) -> tuple[list[WebhookSubscription], int]:
        return await self._database.read(
            partial(webhooks.list_subscriptions, limit=limit, offset=offset)
        )

    async def delete(self, subscription_id: str) -> bool:
        """Remove a subscription with its log; False when there was none."""
        deleted: bool = await self._writer.submit(
            partial(webhooks.delete_subscription, subscription_id=subscription_id)
        )
        self._changed(subscription_id)
        return deleted

    async def rotate_secret(
        self,
        *,
        subscription_id: str,
        secret: str | None,
        overlap: timedelta | None,
        now: datetime,
    ) -> Rotation | None:
        """Start signing with a new secret; the current one still signs for the overlap.

        Returns None for an unknown subscription.
        """
        fresh = secret if secret is not None else new_secret()
        until = now + (self._overlap if overlap is None else overlap)

        async def job(session: AsyncSession) -> Rotation | None:
            row = await webhooks.get_subscription(session, subscription_id)
            if row is None:
                return None
            row.previous_secret = row.secret
            row.previous_secret_until = until
            row.secret = fresh
            row.updated_at = now
            await session.flush()
            return Rotation(secret=fresh, previous_valid_until=until)

        rotation: Rotation | None = await self._writer.submit(job)
        if rotation is not None:
            self._changed(subscription_id)
        return rotation

    async def deliveries(
        self, *, subscription_id: str, limit: int, offset: int
    ) -> tuple[list[WebhookDelivery], int]:
        return await self._database.read(
            partial(
                webhooks.list_deliveries,
                subscription_id=subscription_id,
                limit=limit,
                offset=offset,
            )
        )

    async def replay_delivery(
        self, *, subscription_id: str, delivery_id: int, now: datetime
    ) -> ReplayRange | None:
        """Send the event of a logged delivery again; None when the delivery is unknown.

        Raises:
            LookupError: the event is no longer in the outbox (pruned).
        """

        async def job(session: AsyncSession) -> ReplayRange | None:
            delivery = await webhooks.get_delivery(
                session, subscription_id=subscription_id, delivery_id=delivery_id
            )
            if delivery is None:
                return None
            if await webhooks.outbox_id_of(session, delivery.event_id) is None:
                raise LookupError("the delivery's event is no longer in the outbox")
            return await self._add_replay(
                session, subscription_id, (delivery.outbox_id, delivery.outbox_id, 1), now
            )

        replay: ReplayRange | None = await self._writer.submit(job)
        if replay is not None:
            self._changed(subscription_id)
        return replay

    async def replay_range(
        self, *, subscription_id: str, recorded_from: datetime, recorded_to: datetime, now: datetime
    ) -> ReplayRange | None:
        """Send again what the subscription wants of the events recorded in [from, to).

        Returns None when there are no such events in the outbox.
        """

        async def job(session: AsyncSession) -> ReplayRange | None:
            found = await webhooks.outbox_range(
                session, recorded_from=recorded_from, recorded_to=recorded_to
            )
            if found is None:
                return None
            return await self._add_replay(session, subscription_id, found, now)

        replay: ReplayRange | None = await self._writer.submit(job)
        if replay is not None:
            self._changed(subscription_id)
        return replay

    async def _add_replay(
        self,
        session: AsyncSession,
        subscription_id: str,
        found: tuple[int, int, int],
        now: datetime,
    ) -> ReplayRange:
        first, last, count = found
        replay_id = await webhooks.add_replay(
            session, subscription_id=subscription_id, first_id=first, last_id=last, now=now
        )
        return ReplayRange(replay_id=replay_id, first_id=first, last_id=last, events=count)

    # -- what deliveries cause -------------------------------------------------------------

    async def record(
        self, *, subscription_id: str, attempts: Sequence[Attempt], upto: int | None
    ) -> None:
        """Log attempts and advance the subscription's cursor to `upto`, together."""
        if attempts or upto is not None:
            await self._writer.submit_bulk(
                webhooks.progress(subscription_id=subscription_id, attempts=attempts, upto=upto)
            )

    async def mark_failing(self, attempt: Attempt, *, now: datetime) -> None:
        """A delivery failed its last scheduled attempt: the subscription is failing, and
        `webhook.failing` goes out with that change (once, not on every later failure)."""

        async def job(session: AsyncSession) -> None:
            row = await webhooks.get_subscription(session, attempt.subscription_id)
            if row is None or row.status != SubscriptionStatus.ACTIVE:
                return
            reason = _failure_text(attempt)
            await webhooks.set_status(
                session,
                subscription_id=attempt.subscription_id,
                status=SubscriptionStatus.FAILING,
                reason=reason,
                now=now,
            )
            event = build.webhook_failing(
                attempt.subscription_id,
                at=now,
                event_id=attempt.event_id,
                attempts=attempt.attempt,
                status_code=attempt.status_code,
                error=attempt.error,
            )
            await outbox.add_events(session, [event], now=now)

        await self._writer.submit(job)

    async def mark_active(self, subscription_id: str, *, now: datetime) -> None:
        """A failing subscription delivered again."""

        async def job(session: AsyncSession) -> None:
            row = await webhooks.get_subscription(session, subscription_id)
            if row is not None and row.status == SubscriptionStatus.FAILING:
                await webhooks.set_status(
                    session,
                    subscription_id=subscription_id,
                    status=SubscriptionStatus.ACTIVE,
                    reason=None,
                    now=now,
                )

        await self._writer.submit(job)

    async def mark_gone(self, attempt: Attempt, *, now: datetime) -> None:
        """The receiver answered 410 Gone: the subscription is disabled (Standard Webhooks)."""
        await self._writer.submit(
            partial(
                webhooks.set_status,
                subscription_id=attempt.subscription_id,
                status=SubscriptionStatus.DISABLED,
                reason=f"the receiver answered 410 Gone to event {attempt.event_id}",
                enabled=False,
                now=now,
            )
        )
        self._changed(attempt.subscription_id)

    async def replays(self, subscription_id: str) -> list[tuple[int, int, int]]:
        """A subscription's pending replays: (replay id, first id, last id)."""
        rows = await self._database.read(
            partial(webhooks.pending_replays, subscription_id=subscription_id)
        )
        return [(row.id, row.first_id, row.last_id) for row in rows if row.id is not None]

    async def replay_progress(self, *, replay_id: int, done_through: int, last_id: int) -> None:
        await self._writer.submit(
            partial(
                webhooks.finish_replay,
                replay_id=replay_id,
                done_through=done_through,
                last_id=last_id,
            )
        )

    async def prune_log(self, *, before: datetime) -> int:
        pruned: int = await self._writer.submit(partial(webhooks.prune_log, before=before))
        return pruned


def _status_for(existing: WebhookSubscription | None, change: SubscriptionChange) -> dict[str, Any]:
    """The status after a PUT: disabled when switched off; a new URL or switching it on
    again starts afresh as active; otherwise it stays what deliveries made it."""
    if not change.enabled:
        reason = "disabled by the operator"
        if existing is not None and not existing.enabled and existing.status_reason:
            reason = existing.status_reason
        return {"status": SubscriptionStatus.DISABLED.value, "status_reason": reason}
    if existing is None or not existing.enabled or existing.url != change.url:
        return {
            "status": SubscriptionStatus.ACTIVE.value,
            "status_reason": None,
            "failing_since": None,
        }
    return {}


def _failure_text(attempt: Attempt) -> str:
    what = f"HTTP {attempt.status_code}" if attempt.status_code is not None else attempt.error
    return f"attempt {attempt.attempt} of event {attempt.event_id} failed: {what}"
