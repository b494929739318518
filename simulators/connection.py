"""Whether the charger is, and wants to be, connected: the websocket's state as the shell
reports it, the reconnect backoff, network outages and the power supply."""

from __future__ import annotations

import math
import random

from .model import CloseMode

__all__ = ["Connection"]


class Connection:
    """The connection state the station and the shell share.

    The shell opens the websocket when :meth:`should_open` says so, closes it when
    :attr:`close_request` is set, sends a websocket ping when :attr:`ping_requested`, and
    presents the charger's new certificate from the next connection on when
    :attr:`new_certificate` (clearing each flag).
    """

    def __init__(self, *, rng: random.Random, reconnect_base: float, reconnect_cap: float) -> None:
        self.rng = rng
        self.reconnect_base = reconnect_base
        self.reconnect_cap = reconnect_cap
        self.connected = False
        self.want_connected = False
        self.connect_at = 0.0
        self.close_request: CloseMode | None = None
        self.ping_requested = False  # the shell sends a websocket ping and clears this
        self.new_certificate = False  # the shell switches certificates and clears this
        self.reconnect_requested = False  # open a new connection as soon as this one closes
        self.offline_until = 0.0  # a scenario network outage: no attempts before then
        self.powered = True
        self.failed_attempts = 0  # since the last success: paces the backoff
        self.times_opened = 0
        self.times_failed = 0

    @property
    def unreachable(self) -> bool:
        """Whether every attempt to connect failed, and there was one."""
        return self.times_failed > 0 and self.times_opened == 0

    @property
    def online(self) -> bool:
        """Connected and not about to close."""
        return self.connected and self.close_request is None

    def should_open(self, now: float, *, done: bool) -> bool:
        """Whether the shell should open the connection now."""
        return (
            self.want_connected
            and self.powered
            and not self.connected
            and not done
            and now >= self.connect_at
            and now >= self.offline_until
        )

    def next_attempt_at(self, *, done: bool) -> float | None:
        """Loop time of the next connection attempt, None if none is coming."""
        if self.connected or not self.want_connected or not self.powered or done:
            return None
        return max(self.connect_at, self.offline_until)

    def backoff(self) -> float:
        """Exponential backoff with jitter, capped: half the ceiling plus up to another half."""
        ceiling = min(
            self.reconnect_cap, self.reconnect_base * math.pow(2.0, min(self.failed_attempts, 30))
        )
        return ceiling / 2.0 + self.rng.uniform(0.0, ceiling / 2.0)

    def retry_later(self, now: float) -> None:
        """Schedule the next attempt after a backoff."""
        self.connect_at = now + self.backoff()

    def opened(self) -> None:
        """The websocket is open."""
        self.connected = True
        self.close_request = None
        self.failed_attempts = 0
        self.times_opened += 1

    def attempt_failed(self, now: float) -> None:
        """A connection attempt failed: back off further."""
        self.failed_attempts += 1
        self.times_failed += 1
        self.retry_later(now)

    def closed(self) -> None:
        """The websocket is closed."""
        self.connected = False
        self.close_request = None
        self.ping_requested = False

    def reconnect(self) -> None:
        """Close the connection gracefully and open a new one at once."""
        if self.connected:
            self.reconnect_requested = True
            self.close_request = CloseMode.GRACEFUL

    def drop(self, mode: CloseMode = CloseMode.ABRUPT) -> None:
        """Ask the shell to close the connection, if there is one."""
        if self.connected:
            self.close_request = mode

    def connect_now(self, now: float) -> None:
        """Connect as soon as possible, even during a scenario outage (library use)."""
        self.want_connected = True
        self.connect_at = now
        self.offline_until = min(self.offline_until, now)

    def connect_soon(self, now: float) -> None:
        """Connect as soon as possible, after a fresh start (reboot, power back)."""
        self.failed_attempts = 0
        self.connect_at = now
