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
    event loop's clock reads ``real0`` and the wall clock ``wall0`` (default: ``sim0``).

    Charger behaviour (heartbeats, meter sampling, scenario events, timestamps) runs on
    simulated time; network timers (call timeouts, reconnect backoff) stay real. So do
    absolute times in the central system's commands (a retrieveDate, a startSchedule): the
    central system means wall-clock times, so they take effect when the real clock reaches
    them, however far the simulated clock has run ahead or lags behind
    (:meth:`real_at_wall`, :meth:`sim_at_wall`).
    """

    speed: float = 1.0
    real0: float = 0.0
    sim0: float = 0.0
    wall0: float | None = None

    @classmethod
    def starting_now(cls, loop_time: float, speed: float = 1.0) -> Clock:
        """A clock whose simulated time starts at the current wall-clock time."""
        wall = time.time()
        return cls(speed=speed, real0=loop_time, sim0=wall, wall0=wall)

    def sim(self, real: float) -> float:
        """Simulated POSIX time at loop time ``real``."""
        return self.sim0 + (real - self.real0) * self.speed

    def real(self, sim: float) -> float:
        """Loop time at which simulated POSIX time ``sim`` is reached."""
        return self.real0 + (sim - self.sim0) / self.speed

    def wall(self, real: float) -> float:
        """Wall-clock POSIX time at loop time ``real``."""
        wall0 = self.sim0 if self.wall0 is None else self.wall0
        return wall0 + (real - self.real0)

    def real_at_wall(self, wall: float) -> float:
        """Loop time at which the wall clock reads ``wall`` (an absolute time from the
        central system)."""
        wall0 = self.sim0 if self.wall0 is None else self.wall0
        return self.real0 + (wall - wall0)

    def sim_at_wall(self, wall: float) -> float:
        """Simulated time at the moment the wall clock reads ``wall``: where an absolute
        time from the central system falls on the simulated clock."""
        return self.sim(self.real_at_wall(wall))

    def after(self, real: float, sim_seconds: float) -> float:
        """Loop time ``sim_seconds`` of simulated time after loop time ``real``."""
        return real + sim_seconds / self.speed

    def stamp(self, real: float) -> str:
        """The OCPP timestamp for loop time ``real``."""
        return iso(self.sim(real))
