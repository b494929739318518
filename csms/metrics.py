"""Prometheus metrics of one csms process, served at GET /metrics (docs/operations.md).

One `Metrics` per process (each test's csms has its own registry). Labels stay few: no
label carries a charger id, and every label that takes its values from outside (an OCPP
action, a refusal reason) is capped by `BoundedLabel`, so a misbehaving charger cannot
grow the scrape.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a fast handler (~0.1 ms) to a charger's slow answer (ocpp.call_timeout).
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BOUNDS: tuple[float, ...] = (*_LATENCY, float("inf"))
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


class CallMetrics:
    """csms_ocpp_messages and csms_ocpp_handler_seconds, kept in plain dicts and read at
    scrape time: recording a CALL costs a lookup and three additions, where prometheus'
    own Counter and Histogram take four locks (docs/performance.md, the protocol path)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        # action -> a count per bucket of _LATENCY, the +Inf bucket, then the sum of seconds.
        self.seconds: dict[str, list[float]] = {}

    def record(self, key: tuple[str, str], seconds: float | None) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if seconds is None:
            return
        histogram = self.seconds.get(key[0])
        if histogram is None:
            histogram = self.seconds[key[0]] = [0.0] * (len(_LATENCY) + 2)
        # A bucket counts what is <= its bound: the first bound not below the value.
        histogram[bisect_left(_LATENCY, seconds)] += 1
        histogram[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "csms_ocpp_messages",
            "CALLs received from chargers, by action and outcome (ok, or the CALLERROR code)",
            labels=["action", "outcome"],
        )
        # Copies: a scrape may run on another thread than the loop that records.
        for (action, outcome), count in list(self.counts.items()):
            messages.add_metric([action, outcome], count)
        yield messages
        handler = HistogramMetricFamily(
            "csms_ocpp_handler_seconds",
            "Time from a charger's CALL to our answer being sent, by action",
            labels=["action"],
        )
        for action, histogram in list(self.seconds.items()):
            values = list(histogram)
            buckets: list[tuple[str, float]] = []
            running = 0.0
            for bound, in_bucket in zip(_BOUNDS, values, strict=False):
                running += in_bucket
                buckets.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
            handler.add_metric([action], buckets, sum_value=values[-1])
        yield handler


class Metrics:
    """Every metric csms exports; the parts of csms are handed this object and record."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.connected_chargers = Gauge(
            "csms_connected_chargers", "Chargers with a live OCPP connection", registry=registry
        )
        self.calls = CallMetrics()
        registry.register(self.calls)
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
        # The balancer's profile budget (docs/load-balancing.md, "No spam"): profiles per
        # connector per hour = rate(csms_balancer_profiles_total[1h]) * 3600
        #                      / csms_balancer_connectors.
        self.balancer_profiles = Counter(
            "csms_balancer_profiles",
            "SetChargingProfile.req the balancer sent, by kind (decrease, increase, renew, "
            "default) and outcome (accepted, rejected, unknown)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.balancer_connectors = Gauge(
            "csms_balancer_connectors",
            "Sessions under the balancer's control at the last pass of each circuit tree",
            registry=registry,
        )
        self._actions = BoundedLabel()
        self._reasons = BoundedLabel()
        # (action, outcome) -> its labels, the action bounded by `_actions`.
        self._message_keys: dict[tuple[str, str], tuple[str, str]] = {}

    # -- recording, for the hot paths: one call each ------------------------------------------

    def ocpp_message(self, action: str, outcome: str, seconds: float | None) -> None:
        """A charger CALL answered (ok) or refused (its CALLERROR code)."""
        key = self._message_keys.get((action, outcome))
        if key is None:
            key = (self._actions(action), outcome)
            if len(self._message_keys) < 4096:
                self._message_keys[action, outcome] = key
        self.calls.record(key, seconds)

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


# The clock every duration here is measured with (the function itself, not a wrapper
# around it: it is read twice per CALL).
monotonic = time.perf_counter
