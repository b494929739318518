"""Published events, handed in-process to whoever follows them live (the dashboard's stream).

The outbox relay calls `publish` with the events the broker has just acknowledged, so a
browser sees exactly the stream MQTT consumers see, in the same order per charger. A
follower that falls behind by more than its queue loses its subscription (it is told so
and reloads) instead of holding the relay back or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An event as published: its charger, type, and the CloudEvent JSON bytes."""

    charge_point_id: str
    type: str
    payload: bytes


class Subscription:
    """One follower's queue; `None` in it means the stream has ended.

    The follower may be on another loop than the relay (the API has its own thread and
    loop, csms/api/home.py): its queue is then fed on the follower's loop.
    """

    def __init__(self, charge_point_id: str | None, size: int) -> None:
        self.charge_point_id = charge_point_id
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False
        self._loop = asyncio.get_running_loop()

    def offer(self, event: LiveEvent) -> bool:
        """Queue an event; False when the follower is too far behind (and is dropped)."""
        if self.charge_point_id is not None and event.charge_point_id != self.charge_point_id:
            return True
        if self._elsewhere():
            self._on_own_loop(self._offer_or_end, event)
            return not self.overflowed
        return self._put(event)

    def _put(self, event: LiveEvent) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True

    def _offer_or_end(self, event: LiveEvent) -> None:
        if not self.overflowed and not self._put(event):
            self._drain_and_end()

    def end_behind(self) -> None:
        """End the stream of a follower too far behind."""
        if self._elsewhere():
            self._on_own_loop(lambda _: self._drain_and_end(), None)
        else:
            self._drain_and_end()

    def _drain_and_end(self) -> None:
        # Make room for the end marker: the follower reloads anyway.
        with contextlib.suppress(asyncio.QueueEmpty):
            self.queue.get_nowait()
        self._end()

    def end(self) -> None:
        if self._elsewhere():
            self._on_own_loop(lambda _: self._end(), None)
        else:
            self._end()

    def _end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    def _elsewhere(self) -> bool:
        try:
            return asyncio.get_running_loop() is not self._loop
        except RuntimeError:
            return True

    def _on_own_loop(self, callback: Callable[[LiveEvent], None], event: Any) -> None:
        # The follower's loop may have ended (the API stopped): nothing to feed then.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, event)


class EventFanout:
    """Delivered events to in-process followers; costs nothing while nobody follows."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    @property
    def followed(self) -> bool:
        return bool(self._subscriptions)

    def __len__(self) -> int:
        return len(self._subscriptions)

    def publish(self, events: Sequence[LiveEvent]) -> None:
        for subscription in list(self._subscriptions):
            for event in events:
                if not subscription.offer(event):
                    self._subscriptions.discard(subscription)
                    subscription.end_behind()
                    break

    @contextlib.contextmanager
    def subscribe(self, charge_point_id: str | None = None) -> Iterator[Subscription]:
        """Follow every charger's events, or one charger's."""
        subscription = Subscription(charge_point_id, self._queue_size)
        if self._closed:
            subscription.end()
        else:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def close(self) -> None:
        """End every stream (shutdown), so that open HTTP responses can finish."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription.end()
        self._subscriptions.clear()
