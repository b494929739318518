"""Counters and latency histograms shared by the chargers of one run."""

from __future__ import annotations

import math
from typing import Any, Final

__all__ = ["LatencyHistogram", "Stats"]

_BASE: Final = 1e-6  # 1 µs
_STEP: Final = math.log(1.02)  # 2 % wide buckets


class LatencyHistogram:
    """Log-bucketed latencies (2 % resolution, bounded memory)."""

    __slots__ = ("count", "counts", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.max = 0.0

    def record(self, seconds: float) -> None:
        """Add one latency, in seconds."""
        index = int(math.log(max(seconds, _BASE) / _BASE) / _STEP)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in seconds, or None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(_BASE * math.exp((index + 0.5) * _STEP), self.max)
        return self.max

    def reset(self) -> None:
        """Forget everything."""
        self.counts.clear()
        self.count = 0
        self.max = 0.0


class Stats:
    """What happened during a run, across all chargers."""

    __slots__ = (
        "auth_rejected",
        "boots_accepted",
        "callerrors_received",
        "callerrors_sent",
        "calls_received",
        "calls_sent",
        "connect_failures",
        "connects",
        "disconnects",
        "dropped_messages",
        "energy_wh",
        "errors",
        "late_answers",
        "latency",
        "max_errors_kept",
        "messages_received",
        "messages_sent",
        "protocol_errors",
        "recent_latency",
        "retries",
        "sessions_abandoned",
        "sessions_missed",
        "timeouts",
        "transactions_started",
        "transactions_stopped",
    )

    def __init__(self, max_errors_kept: int = 50) -> None:
        self.messages_sent = 0
        self.messages_received = 0
        self.calls_sent = 0
        self.calls_received = 0
        self.callerrors_received = 0
        self.callerrors_sent = 0
        self.protocol_errors = 0
        self.timeouts = 0
        self.late_answers = 0
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.boots_accepted = 0
        self.transactions_started = 0
        self.transactions_stopped = 0
        self.retries = 0
        self.dropped_messages = 0
        self.sessions_missed = 0
        self.sessions_abandoned = 0
        self.auth_rejected = 0
        self.energy_wh = 0.0
        self.latency = LatencyHistogram()
        self.recent_latency = LatencyHistogram()
        self.errors: list[str] = []
        self.max_errors_kept = max_errors_kept

    def record_latency(self, seconds: float) -> None:
        """Round-trip time of one of our CALLs."""
        self.latency.record(seconds)
        self.recent_latency.record(seconds)

    def note(self, identity: str, text: str) -> None:
        """Keep the first few error descriptions for the summary."""
        if len(self.errors) < self.max_errors_kept:
            self.errors.append(f"{identity}: {text}")

    def protocol_error(self, identity: str, text: str) -> None:
        """Count and describe a protocol error (ours or the central system's)."""
        self.protocol_errors += 1
        self.note(identity, text)

    @property
    def failed(self) -> bool:
        """Whether the run should exit non-zero."""
        return bool(self.protocol_errors or self.callerrors_received or self.timeouts)

    def as_dict(self) -> dict[str, Any]:
        """Counters for the JSON summary."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000.0, 3)

        return {
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "calls_sent": self.calls_sent,
            "calls_received": self.calls_received,
            "callerrors_received": self.callerrors_received,
            "callerrors_sent": self.callerrors_sent,
            "protocol_errors": self.protocol_errors,
            "timeouts": self.timeouts,
            "late_answers": self.late_answers,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "boots_accepted": self.boots_accepted,
            "transactions_started": self.transactions_started,
            "transactions_stopped": self.transactions_stopped,
            "transaction_message_retries": self.retries,
            "transaction_messages_dropped": self.dropped_messages,
            "sessions_missed": self.sessions_missed,
            "sessions_abandoned": self.sessions_abandoned,
            "authorizations_rejected": self.auth_rejected,
            "energy_wh": round(self.energy_wh, 3),
            "latency_ms": {
                "count": self.latency.count,
                "p50": ms(self.latency.quantile(0.5)),
                "p99": ms(self.latency.quantile(0.99)),
                "max": ms(self.latency.max if self.latency.count else None),
            },
            "errors": list(self.errors),
        }
