"""Prometheus metrics of one csms process, served at GET /metrics (docs/operations.md).

One `Metrics` per process (each test's csms has its own registry). Labels stay few: no
label carries a charger id, and every label that takes its values from outside (an OCPP
action, a refusal reason) is capped by `BoundedLabel`, so a misbehaving charger cannot
grow the scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a fast handler (~0.1 ms) to a charger's slow answer (ocpp.call_timeout).
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LAG = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class BoundedLabel:
    """Passes the first `limit` distinct values through, and calls the rest "other"."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return "other"
        self._seen.add(value)
        return value


class Metrics:
    """Every metric csms exports; the parts of csms are handed this object and record."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.connected_chargers = Gauge(
            "csms_connected_chargers", "Chargers with a live OCPP connection", registry=registry
        )
        self.ocpp_messages = Counter(
            "csms_ocpp_messages",
            "CALLs received from chargers, by action and outcome (ok, or the CALLERROR code)",
            ["action", "outcome"],
            registry=registry,
        )
        self.ocpp_handler_seconds = Histogram(
            "csms_ocpp_handler_seconds",
            "Time from a charger's CALL to our answer being sent, by action",
            ["action"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.commands = Counter(
            "csms_commands",
            "CSMS->charger commands sent, by action and outcome "
            "(ok, callerror, invalid, timeout, disconnected)",
            ["action", "outcome"],
            registry=registry,
        )
        self.command_seconds = Histogram(
            "csms_command_seconds",
            "Time from sending a command to the charger's answer, by action",
            ["action"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.db_commit_seconds = Histogram(
            "csms_db_commit_seconds",
            "Time to run and commit one group-commit batch",
            buckets=_LATENCY,
            registry=registry,
        )
        self.db_batch_jobs = Histogram(
            "csms_db_batch_jobs",
            "Jobs committed together in one batch",
            buckets=_BATCH,
            registry=registry,
        )
        self.db_batch_splits = Counter(
            "csms_db_batch_splits",
            "Batches split in halves because a job in them failed (store/db.py)",
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "csms_outbox_backlog_events",
            "Events committed but not yet acknowledged by the broker (read at scrape time)",
            registry=registry,
        )
        self.outbox_oldest_age_seconds = Gauge(
            "csms_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event, 0 when none (read at scrape time)",
            registry=registry,
        )
        self.events_published = Counter(
            "csms_events_published",
            "Events published to MQTT and acknowledged (PUBACK)",
            registry=registry,
        )
        self.relay_lag_seconds = Histogram(
            "csms_event_relay_lag_seconds",
            "Time from an event's commit to the broker's PUBACK",
            buckets=_LAG,
            registry=registry,
        )
        self.mqtt_publish_seconds = Histogram(
            "csms_mqtt_publish_seconds",
            "Time from sending a PUBLISH to its PUBACK",
            buckets=_LATENCY,
            registry=registry,
        )
        self.security_refusals = Counter(
            "csms_security_refusals",
            "Refused charger connections, by reason",
            ["reason"],
            registry=registry,
        )
        self.dashboard_logins = Counter(
            "csms_dashboard_logins",
            "Dashboard login attempts, by outcome (ok, failed, throttled)",
            ["outcome"],
            registry=registry,
        )
        self.live_subscribers = Gauge(
            "csms_dashboard_live_streams",
            "Browsers following the live event stream",
            registry=registry,
        )
        self._actions = BoundedLabel()
        self._reasons = BoundedLabel()
        # Label children cached: `labels()` costs more than the increment itself.
        self._message_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    # -- recording, for the hot paths: one call each ------------------------------------------

    def ocpp_message(self, action: str, outcome: str, seconds: float | None) -> None:
        """A charger CALL answered (ok) or refused (its CALLERROR code)."""
        children = self._message_children.get((action, outcome))
        if children is None:
            label = self._actions(action)
            children = (
                self.ocpp_messages.labels(label, outcome),
                self.ocpp_handler_seconds.labels(label),
            )
            if len(self._message_children) < 4096:
                self._message_children[action, outcome] = children
        children[0].inc()
        if seconds is not None:
            children[1].observe(seconds)

    def command(self, action: str, outcome: str, seconds: float) -> None:
        label = self._actions(action)
        self.commands.labels(label, outcome).inc()
        self.command_seconds.labels(label).observe(seconds)

    def commit(self, jobs: int, seconds: float) -> None:
        self.db_batch_jobs.observe(jobs)
        self.db_commit_seconds.observe(seconds)

    def batch_split(self) -> None:
        self.db_batch_splits.inc()

    def refusal(self, reason: str) -> None:
        self.security_refusals.labels(self._reasons(reason)).inc()

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Let `gauge` read its value at scrape time."""
        gauge.set_function(read)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def monotonic() -> float:
    """The clock every duration here is measured with."""
    return time.perf_counter()
