"""Bounds on what one charger connection may cost, whatever the transport (sans I/O).

The numbers come from `[ocpp]` in config.toml and are listed with their defaults in
docs/security.md, "Limits and hostile input". A transport (websockets today, picows
perhaps) feeds `FragmentBound` each data frame it receives; the RPC layer applies the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from csms.config import OcppSettings


@dataclass(frozen=True)
class Limits:
    """What one connection may send and make csms keep."""

    # Largest message (bytes), all its fragments together: RFC 6455 §7.4.1 1009 beyond it.
    max_frame_size: int = 1024 * 1024
    # Fragments of one message, and seconds from its first fragment to its last.
    max_fragments: int = 1024
    fragment_timeout: float = 10.0
    # Largest DataTransfer `data` kept (characters); a bigger one gets a CALLERROR.
    max_data_transfer: int = 64 * 1024
    # Bytes of answers kept per connection to answer a retried message again.
    answer_cache_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: OcppSettings) -> Limits:
        return cls(
            max_frame_size=settings.max_frame_size,
            max_fragments=settings.max_fragments,
            fragment_timeout=settings.fragment_timeout,
            max_data_transfer=settings.max_data_transfer,
            answer_cache_bytes=settings.answer_cache_bytes,
        )


class FragmentBound:
    """Counts the fragments of the message being received, and how long it has taken.

    RFC 6455 §5.4 lets a message come in any number of fragments, and the size limit
    counts only bytes: a 1 MiB message in a million one-byte frames cost 150 MB of memory
    and 10 s of CPU (issue 13). Each frame is fed here before it is kept.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._fragments = 0
        self._started = 0.0

    def receive_frame(self, *, fin: bool, now: float) -> str | None:
        """Note one data frame (first or continuation); why the connection must close, or None."""
        if self._fragments == 0:
            self._started = now
        self._fragments += 1
        fragments, started = self._fragments, self._started
        if fin:
            self._fragments = 0
        if fragments > self._limits.max_fragments:
            return f"message in more than {self._limits.max_fragments} fragments"
        if fragments > 1 and now - started > self._limits.fragment_timeout:
            return f"fragmented message took over {self._limits.fragment_timeout:g} s"
        return None


class LogBudget:
    """How many rejection log lines one connection may write per window; the rest are counted.

    A charger that sends the same bad message in a loop must not fill the disk: the first
    `burst` lines of each window are written, the others only counted, and the next line
    written says how many were left out.
    """

    def __init__(self, *, burst: int = 10, window: float = 60.0) -> None:
        self._burst = burst
        self._window = window
        self._opened = float("-inf")
        self._written = 0
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        """Whether a line may be written now; when not, it is counted in `suppressed`."""
        if now - self._opened >= self._window:
            self._opened = now
            self._written = 0
        if self._written < self._burst:
            self._written += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """Lines left out since the last call (reported with the next line written)."""
        count, self.suppressed = self.suppressed, 0
        return count
