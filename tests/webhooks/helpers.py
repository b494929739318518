"""Webhook test helpers: a csms with quick retries, subscribing, and waiting for a cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from csms.config import Settings, WebhookSettings
from csms.store import webhooks
from tests.support import MS, RunningCsms, settings_for

T = TypeVar("T")

# Six quick retries: enough to see retries without the subscription going failing.
QUICK_RETRIES = ", ".join([f"{50 * MS}"] * 6)


def webhook_settings(database_url: str, **changes: Any) -> Settings:
    """A test csms whose webhooks may call loopback receivers and retry within moments."""
    options: dict[str, Any] = {
        "allow_private_targets": True,
        "retry_schedule": QUICK_RETRIES,
        "connect_timeout": 2_000 * MS,
        "read_timeout": 2_000 * MS,
    }
    return replace(settings_for(database_url), webhooks=WebhookSettings(**(options | changes)))


async def subscribe(
    api: httpx.AsyncClient, webhook_id: str, url: str, *, event_types: list[str], **extra: Any
) -> str:
    """Create a subscription and return the secret its creation showed."""
    answer = await api.put(
        f"/webhooks/{webhook_id}", json={"url": url, "eventTypes": event_types, **extra}
    )
    assert answer.status_code == 201, answer.text
    secret: str = answer.json()["secret"]
    return secret


async def after_commits(csms: RunningCsms, check: Callable[[], Awaitable[T | None]]) -> T:
    """Run `check` now and after each of csms's commits until it returns something other
    than None; return that (fails after 10 s, scaled)."""
    database = csms.app.database
    committed = asyncio.Event()
    database.writer.listeners.append(committed.set)
    try:
        async with asyncio.timeout(10_000 * MS):
            while True:
                committed.clear()
                found = await check()
                if found is not None:
                    return found
                await committed.wait()
    finally:
        database.writer.listeners.remove(committed.set)


async def caught_up(csms: RunningCsms, webhook_id: str) -> None:
    """Wait until the subscription's cursor has passed every outbox row written so far."""
    database = csms.app.database
    target = await database.read(webhooks.last_outbox_id)

    async def passed() -> bool | None:
        row = await database.read(lambda session: webhooks.get_subscription(session, webhook_id))
        return True if row is not None and row.cursor >= target else None

    await after_commits(csms, passed)


async def attempts_logged(csms: RunningCsms, webhook_id: str, count: int) -> list[Any]:
    """Wait until the delivery log holds `count` attempts; return them, oldest first."""
    database = csms.app.database

    async def logged() -> list[Any] | None:
        rows, total = await database.read(
            lambda session: webhooks.list_deliveries(
                session, subscription_id=webhook_id, limit=1000, offset=0
            )
        )
        return list(reversed(rows)) if total >= count else None

    return await after_commits(csms, logged)


async def until_status(csms: RunningCsms, webhook_id: str, status: str) -> None:
    """Wait until the subscription's status is `status` (deliveries change it)."""
    database = csms.app.database

    async def reached() -> bool | None:
        row = await database.read(lambda session: webhooks.get_subscription(session, webhook_id))
        return True if row is not None and row.status == status else None

    await after_commits(csms, reached)
