"""Many chargers in one process: planning, the run, the progress display and the summary."""

from __future__ import annotations

import asyncio
import math
import ssl as ssl_module
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO

from .charger import Charger
from .clock import Clock
from .scenario import Scenario, plan_charger
from .smart import Electrical
from .station import ChargerInfo, EvSpec, Registration, SessionRecord
from .stats import Stats

__all__ = ["Fleet", "Progress", "ProgressMode", "Snapshot"]


class ProgressMode(StrEnum):
    """How progress is shown."""

    AUTO = "auto"  # live line on a terminal, plain lines otherwise
    LIVE = "live"
    PLAIN = "plain"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fleet at one moment."""

    elapsed: float
    chargers: int
    connected: int
    booted: int
    charging: int
    messages_per_s: float
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    transactions_started: int
    transactions_stopped: int

    def line(self) -> str:
        """One human-readable line."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        return (
            f"[{self.elapsed:7.1f}s] connected {self.connected}/{self.chargers}"
            f"  booted {self.booted}  charging {self.charging}"
            f"  tx {self.transactions_started}/{self.transactions_stopped}"
            f"  msg/s {self.messages_per_s:.0f}  errors {self.errors}"
            f"  latency p50 {ms(self.p50_ms)} ms p99 {ms(self.p99_ms)} ms"
        )


class Progress:
    """Live status on a terminal (one rewritten line), periodic plain lines otherwise."""

    def __init__(
        self,
        mode: ProgressMode = ProgressMode.AUTO,
        *,
        stream: TextIO | None = None,
        interval: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode is ProgressMode.AUTO:
            mode = ProgressMode.LIVE if self.stream.isatty() else ProgressMode.PLAIN
        self.mode = mode
        self.interval = (
            interval if interval is not None else (0.5 if mode is ProgressMode.LIVE else 10.0)
        )
        self._live_line = False

    def show(self, snapshot: Snapshot) -> None:
        """Display a snapshot."""
        if self.mode is ProgressMode.OFF:
            return
        if self.mode is ProgressMode.LIVE:
            self.stream.write("\r\x1b[2K" + snapshot.line())
            self._live_line = True
        else:
            self.stream.write(snapshot.line() + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (ends the live line first)."""
        if self.mode is ProgressMode.OFF:
            return
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish the live line."""
        if self._live_line:
            self.stream.write("\n")
            self.stream.flush()
            self._live_line = False


class Fleet:
    """``chargers`` simulated chargers following ``scenario`` against ``url``."""

    def __init__(
        self,
        url: str,
        scenario: Scenario | None = None,
        *,
        chargers: int = 1,
        connectors: int = 2,
        identity_pattern: str = "SIM-{n:05d}",
        first: int = 1,
        vendor: str | None = None,
        model: str | None = None,
        firmware: str | None = None,
        serial_pattern: str | None = None,
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        speed: float | None = None,
        call_timeout: float = 30.0,
        open_timeout: float = 10.0,
        reconnect_cap: float = 30.0,
        drain_timeout: float = 10.0,
        validate_outbound: bool = False,
        stats: Stats | None = None,
    ) -> None:
        if chargers < 1 or connectors < 1:
            raise ValueError("at least one charger with one connector")
        self.url = url
        self.scenario = scenario or Scenario()
        self.count = chargers
        self.connectors = connectors
        self.identity_pattern = identity_pattern
        self.first = first
        spec = self.scenario.charger
        self.vendor = vendor or spec.vendor
        self.model = model or spec.model
        self.firmware = firmware or spec.firmware
        self.serial_pattern = serial_pattern or spec.serial_pattern
        self.password = password
        self.ssl = ssl
        self.speed = speed if speed is not None else self.scenario.speed
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        self.call_timeout = call_timeout
        self.open_timeout = open_timeout
        self.reconnect_cap = reconnect_cap
        self.drain_timeout = drain_timeout
        self.validate_outbound = validate_outbound
        self.stats = stats if stats is not None else Stats()
        self.chargers: list[Charger] = []
        self.clock: Clock | None = None
        self._stop = asyncio.Event()
        self._started_at = 0.0
        self._snapshot_at = 0.0
        self._snapshot_messages = 0
        self.end_snapshot: Snapshot | None = None
        for index in range(chargers):
            n = first + index
            identity = identity_pattern.format(n=n)
            ChargerInfo(  # fail early on fields too long for BootNotification
                identity,
                vendor=self.vendor,
                model=self.model,
                serial=self.serial_pattern.format(n=n, identity=identity),
                firmware=self.firmware,
            )

    def identity(self, index: int) -> str:
        """Identity of the ``index``-th charger (0-based)."""
        return self.identity_pattern.format(n=self.first + index)

    def _build(self, clock: Clock) -> None:
        scenario = self.scenario
        spec = scenario.charger
        electrical = Electrical(spec.voltage, spec.phases, spec.max_power_w)
        config = scenario.config_map
        sessions = scenario.sessions
        for index in range(self.count):
            n = self.first + index
            identity = self.identity_pattern.format(n=n)
            serial = self.serial_pattern.format(n=n, identity=identity)
            plan = plan_charger(scenario, n, identity, self.connectors)
            info = ChargerInfo(
                identity,
                vendor=self.vendor,
                model=self.model,
                serial=serial,
                firmware=self.firmware,
                meter_type=spec.meter_type,
                meter_serial=f"M-{serial}"[:25],
            )
            default_ev = EvSpec(
                sessions.battery_wh.high,
                sessions.ev_max_power_w.high,
                sessions.soc_start.low,
                sessions.soc_target.high,
            )
            self.chargers.append(
                Charger(
                    self.url,
                    identity,
                    self.connectors,
                    info=info,
                    password=self.password,
                    ssl=self.ssl,
                    config=config,
                    speed=self.speed,
                    clock=clock,
                    stats=self.stats,
                    plan=plan,
                    electrical=electrical,
                    default_ev=default_ev,
                    remote_dwell=sessions.dwell.high if sessions.per_connector else None,
                    auto_boot=True,
                    auto_reconnect=True,
                    call_timeout=self.call_timeout,
                    open_timeout=self.open_timeout,
                    reconnect_cap=self.reconnect_cap,
                    drain_timeout=self.drain_timeout,
                    validate_outbound=self.validate_outbound,
                    record=False,
                    seed=f"{scenario.seed}:{n}",
                )
            )

    def stop(self) -> None:
        """Ask the run to end (safe from a signal handler)."""
        self._stop.set()

    @property
    def done(self) -> bool:
        """Whether every charger has played its whole script."""
        return all(c.core.finished_script for c in self.chargers)

    def sessions(self) -> list[SessionRecord]:
        """Every finished transaction of the fleet."""
        return [record for c in self.chargers for record in c.completed]

    def snapshot(self) -> Snapshot:
        """Current figures; messages/s and latency are since the previous snapshot."""
        now = time.monotonic()
        stats = self.stats
        messages = stats.messages_sent + stats.messages_received
        span = now - self._snapshot_at
        rate = (messages - self._snapshot_messages) / span if span > 0 else 0.0
        self._snapshot_at, self._snapshot_messages = now, messages
        recent = stats.recent_latency
        p50, p99 = recent.quantile(0.5), recent.quantile(0.99)
        recent.reset()
        connected = booted = charging = 0
        for c in self.chargers:
            core = c.core
            if core.connected:
                connected += 1
                if core.registration is Registration.ACCEPTED:
                    booted += 1
            charging += core.charging
        return Snapshot(
            elapsed=now - self._started_at,
            chargers=self.count,
            connected=connected,
            booted=booted,
            charging=charging,
            messages_per_s=rate,
            errors=stats.protocol_errors + stats.callerrors_received + stats.timeouts,
            p50_ms=None if p50 is None else p50 * 1000.0,
            p99_ms=None if p99 is None else p99 * 1000.0,
            transactions_started=stats.transactions_started,
            transactions_stopped=stats.transactions_stopped,
        )

    def _anchor(self, loop_time: float, run_seconds: float | None) -> Clock:
        """Simulated time ends at wall-clock 'now' when the run length is known, so that no
        timestamp is ever ahead of the central system's clock."""
        span: float | None = None
        if self.scenario.duration is not None:
            span = self.scenario.duration
        if run_seconds is not None:
            span = run_seconds * self.speed if span is None else min(span, run_seconds * self.speed)
        wall0 = time.time()
        sim0 = wall0
        if self.speed > 1.0 and span is not None:
            sim0 -= span - span / self.speed
        return Clock(speed=self.speed, real0=loop_time, sim0=sim0, wall0=wall0)

    async def run(
        self,
        *,
        duration: float | None = None,
        until_done: bool = False,
        progress: Progress | None = None,
        on_tick: Callable[[Snapshot], None] | None = None,
    ) -> dict[str, Any]:
        """Run until ``duration`` real seconds pass, the scenario's duration passes, every
        script is done (``until_done``) or :meth:`stop`; then stop open sessions cleanly
        (reason Local), drain and close. Returns the summary."""
        loop = asyncio.get_running_loop()
        if duration is None and self.scenario.duration is not None:
            duration = self.scenario.duration / self.speed
        self.clock = self._anchor(loop.time(), duration)
        self._build(self.clock)
        self._started_at = self._snapshot_at = time.monotonic()
        started = loop.time()
        deadline = started + duration if duration is not None else math.inf
        for charger in self.chargers:
            charger.start()
        tick = progress.interval if progress is not None else 1.0
        next_show = started + tick
        reason = "stopped"
        while True:
            now = loop.time()
            if now >= deadline:
                reason = "duration"
                break
            if until_done and self.done:
                reason = "done"
                break
            if self._stop.is_set():
                break
            wait = min(deadline, next_show, now + 0.25 if until_done else next_show) - now
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._stop.wait()
            except TimeoutError:
                pass
            if loop.time() >= next_show:
                snapshot = self.snapshot()
                if progress is not None:
                    progress.show(snapshot)
                if on_tick is not None:
                    on_tick(snapshot)
                next_show = loop.time() + tick
        self.end_snapshot = self.snapshot()
        if progress is not None:
            progress.show(self.end_snapshot)
            progress.message(f"stopping ({reason}): ending open sessions and draining queues")
        for charger in self.chargers:
            charger.shutdown()
        results = await asyncio.gather(
            *(charger.wait() for charger in self.chargers), return_exceptions=True
        )
        for charger, result in zip(self.chargers, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                self.stats.note(charger.identity, f"task ended with {result!r}")
        elapsed = loop.time() - started
        if progress is not None:
            progress.end()
        return self.summary(elapsed, reason)

    def summary(self, elapsed: float, reason: str = "") -> dict[str, Any]:
        """The JSON summary of the run."""
        stats = self.stats
        end = self.end_snapshot
        counters = stats.as_dict()
        messages = stats.messages_sent + stats.messages_received
        # A charger that never got a connection did not take part: the run failed.
        unreachable = sum(1 for charger in self.chargers if charger.core.unreachable)
        return {
            "scenario": self.scenario.name,
            "url": self.url,
            "ended_by": reason,
            "duration_s": round(elapsed, 3),
            "speed": self.speed,
            "chargers": self.count,
            "connectors": self.connectors,
            "connected": end.connected if end else 0,
            "booted": end.booted if end else 0,
            "charging_at_end": end.charging if end else 0,
            "transactions_started": stats.transactions_started,
            "transactions_stopped": stats.transactions_stopped,
            "messages_sent": stats.messages_sent,
            "messages_received": stats.messages_received,
            "messages_per_s": round(messages / elapsed, 1) if elapsed > 0 else 0.0,
            "callerrors_received": stats.callerrors_received,
            "protocol_errors": stats.protocol_errors,
            "timeouts": stats.timeouts,
            "unreachable": unreachable,
            "latency_ms": counters["latency_ms"],
            "counters": {k: v for k, v in counters.items() if k not in ("latency_ms", "errors")},
            "errors": counters["errors"],
            "ok": not stats.failed and not unreachable,
        }
