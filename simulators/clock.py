"""The simulated clock: real (event-loop) time mapped onto scaled wall-clock time."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Clock", "iso"]


def iso(posix: float) -> str:
    """POSIX seconds as an OCPP dateTime, ``2025-01-31T08:00:00.000Z``."""
    whole = int(posix // 1)
    millis = int((posix - whole) * 1000.0)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


@dataclass(frozen=True, slots=True)
class Clock:
    """``speed`` simulated seconds pass per real second, starting at ``sim0`` when the
    event loop's clock reads ``real0``.

    Charger behaviour (heartbeats, meter sampling, scenario events, timestamps) runs on
    simulated time; network timers (call timeouts, reconnect backoff) stay real.
    """

    speed: float = 1.0
    real0: float = 0.0
    sim0: float = 0.0

    @classmethod
    def starting_now(cls, loop_time: float, speed: float = 1.0) -> Clock:
        """A clock whose simulated time starts at the current wall-clock time."""
        return cls(speed=speed, real0=loop_time, sim0=time.time())

    def sim(self, real: float) -> float:
        """Simulated POSIX time at loop time ``real``."""
        return self.sim0 + (real - self.real0) * self.speed

    def real(self, sim: float) -> float:
        """Loop time at which simulated POSIX time ``sim`` is reached."""
        return self.real0 + (sim - self.sim0) / self.speed

    def after(self, real: float, sim_seconds: float) -> float:
        """Loop time ``sim_seconds`` of simulated time after loop time ``real``."""
        return real + sim_seconds / self.speed

    def stamp(self, real: float) -> str:
        """The OCPP timestamp for loop time ``real``."""
        return iso(self.sim(real))
