"""The narrow interface each part of a charger sees of the whole.

The parts (sessions, status, firmware, ...) never hold the
:class:`~simulators.station.Station`: they get a :class:`Services`, which the station
implements, plus whatever narrow extra their own module declares. So a part can read the
clock, set its timers and queue a CALL, and nothing else it was not given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .clock import Clock
from .config import ConfigStore
from .model import Session
from .ocppj import CallError
from .stats import Stats
from .timers import Timers

__all__ = ["AfterReply", "Callback", "Handler", "Services"]

Callback = Callable[[dict[str, Any] | None, CallError | None], None]
"""What becomes of one of our CALLs: (CALLRESULT payload, None) or (None, the error)."""

Handler = Callable[[dict[str, Any], float], dict[str, Any]]
"""Answers a CALL from the central system: (request payload, loop time) -> response."""

AfterReply = Callable[[float], None]
"""Work a handler leaves for after its answer is on the wire (gets the loop time)."""


class Services(Protocol):
    """The clock, the timers, the configuration and the outbound queue of one charger."""

    @property
    def identity(self) -> str:
        """The charge point identity."""
        ...

    @property
    def clock(self) -> Clock:
        """Simulated time (it may be replaced before the charger starts: read it each time)."""
        ...

    @property
    def now(self) -> float:
        """Loop time of the event being handled (for CALL callbacks, which get none)."""
        ...

    @property
    def timers(self) -> Timers:
        """The charger's timers."""
        ...

    @property
    def config(self) -> ConfigStore:
        """The configuration keys."""
        ...

    @property
    def stats(self) -> Stats:
        """Counters of the run."""
        ...

    def send_call(
        self,
        action: str,
        payload: dict[str, Any],
        callback: Callback | None = None,
        *,
        transactional: bool = False,
        session: Session | None = None,
        front: bool = False,
    ) -> None:
        """Queue one of our CALLs.

        Args:
            callback: told the answer, or why there is none.
            transactional: kept while offline and retried (OCPP 1.6 §4.10).
            session: the transaction it belongs to; its transactionId is filled in when
                it is sent, since the Start may still be on its way.
            front: queued before everything else (BootNotification).
        """
        ...

    def after_reply(self, action: AfterReply) -> None:
        """Run ``action`` once the answer to the current CALL is sent.

        OCPP 1.6 wants e.g. the StatusNotification that a RemoteStart causes to follow the
        RemoteStart.conf, not to overtake it.
        """
        ...
