"""A bench to drive a :class:`~simulators.station.Station` without a network or event loop.

Time is a plain number moved by :meth:`Bench.advance`; a scripted central system answers
every CALL the station sends (or holds it, to test retries and crossing CALLs). Used by
the simulator's own unit tests, and handy to script a charger deterministically.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from .clock import Clock, iso
from .ocppj import Call
from .station import ChargerInfo, Station

__all__ = ["SIM_EPOCH", "Bench", "make_station"]

SIM_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: simulated time at bench time 0

Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


def make_station(identity: str = "BENCH-1", connectors: int = 2, **options: Any) -> Station:
    """A station on a bench clock (speed 1 unless ``clock`` is given), validating what it
    sends and starting by itself (auto boot, auto reconnect) unless told otherwise."""
    options.setdefault("clock", Clock(speed=1.0, real0=0.0, sim0=SIM_EPOCH))
    options.setdefault("validate_outbound", True)
    return Station(ChargerInfo(identity, serial="SN-1"), connectors, **options)


class Bench:
    """A fake central system and clock around one station."""

    def __init__(self, station: Station, *, online: bool = True) -> None:
        self.station = station
        self.now = 0.0
        self.online = online
        self.frames: list[list[Any]] = []  # everything the station sent, decoded
        self.calls: list[Call] = []  # CALLs the station sent, in order
        self.held: list[Call] = []  # CALLs left unanswered (see ``silent``)
        self.silent: set[str] = set()  # actions not answered automatically
        self.replies: dict[str, list[Any]] = {}  # station's answers to our CALLs, by id
        self._ids = itertools.count(1)
        self._transactions = itertools.count(1)
        self.answers: dict[str, Answer] = {
            "Authorize": {"idTagInfo": {"status": "Accepted"}},
            "BootNotification": lambda _: {
                "status": "Accepted",
                "currentTime": iso(SIM_EPOCH + self.now),
                "interval": 300,
            },
            "DataTransfer": {"status": "Accepted"},
            "DiagnosticsStatusNotification": {},
            "FirmwareStatusNotification": {},
            "Heartbeat": lambda _: {"currentTime": iso(SIM_EPOCH + self.now)},
            "MeterValues": {},
            "StartTransaction": lambda _: {
                "transactionId": next(self._transactions),
                "idTagInfo": {"status": "Accepted"},
            },
            "StatusNotification": {},
            "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
            "LogStatusNotification": {},
            "SecurityEventNotification": {},
            "SignCertificate": {"status": "Accepted"},
            "SignedFirmwareStatusNotification": {},
        }

    # -- driving

    def start(self) -> Bench:
        """Begin the station's life (connect, boot) and settle."""
        self.station.begin(self.now)
        self.pump()
        return self

    def pump(self) -> None:
        """Carry messages and connection changes until nothing moves."""
        st = self.station
        for _ in range(100_000):
            moved = False
            while st.outbox:
                moved = True
                frame = orjson.loads(st.outbox.popleft())
                self.frames.append(frame)
                if frame[0] == 2:
                    call = Call(frame[1], frame[2], frame[3])
                    self.calls.append(call)
                    if call.action in self.silent:
                        self.held.append(call)
                    else:
                        self._answer(call)
                else:
                    self.replies[frame[1]] = frame
            if st.close_request is not None:  # like the shell: send first, then close
                st.on_disconnected(self.now)
                moved = True
            if st.wants_connection(self.now):
                if self.online:
                    st.on_connected(self.now)
                else:
                    st.on_connect_failed(self.now, "bench is offline")
                moved = True
            if not moved:
                return
        raise RuntimeError("bench did not settle")

    def _answer(self, call: Call) -> None:
        answer = self.answers[call.action]
        payload = answer(call.payload) if callable(answer) else answer
        self.station.on_frame(orjson.dumps([3, call.unique_id, payload]), self.now)

    def answer(self, call: Call, payload: dict[str, Any]) -> None:
        """Answer a held CALL."""
        self.held.remove(call)
        self.station.on_frame(orjson.dumps([3, call.unique_id, payload]), self.now)
        self.pump()

    def fail(self, call: Call, code: str = "InternalError", description: str = "") -> None:
        """Answer a held CALL with a CALLERROR."""
        self.held.remove(call)
        self.station.on_frame(orjson.dumps([4, call.unique_id, code, description, {}]), self.now)
        self.pump()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of bench time pass, firing timers in order."""
        st = self.station
        target = self.now + seconds
        self.pump()
        for _ in range(1_000_000):
            deadline = st.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            st.on_timer(self.now)
            self.pump()
        else:
            raise RuntimeError("timers did not settle")
        self.now = target
        self.pump()

    def send(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """A CALL from the central system; returns the station's answer frame."""
        unique_id = f"csms-{next(self._ids)}"
        self.station.on_frame(orjson.dumps([2, unique_id, action, payload]), self.now)
        self.pump()
        return self.replies.pop(unique_id)

    def send_raw(self, data: bytes) -> None:
        """Any text from the central system."""
        self.station.on_frame(data, self.now)
        self.pump()

    def disconnect(self, *, offline: bool = True) -> None:
        """The network drops; with ``offline`` reconnection attempts fail until
        :meth:`reconnect`."""
        self.online = not offline
        self.station.on_disconnected(self.now)
        self.pump()

    def reconnect(self) -> None:
        """The network is back: the next attempt (after its backoff) succeeds."""
        self.online = True
        self.pump()

    # -- looking

    def sent(self, action: str) -> list[dict[str, Any]]:
        """Payloads of the CALLs of ``action`` the station sent, in order."""
        return [c.payload for c in self.calls if c.action == action]

    def actions(self, since: int = 0) -> list[str]:
        """Actions of the CALLs sent, from index ``since``."""
        return [c.action for c in self.calls[since:]]

    def statuses(self, connector_id: int) -> list[str]:
        """StatusNotification statuses reported for a connector."""
        return [
            p["status"] for p in self.sent("StatusNotification") if p["connectorId"] == connector_id
        ]

    def set_answers(self, answers: Iterable[tuple[str, Answer]]) -> None:
        """Change how the fake central system answers."""
        self.answers.update(dict(answers))
