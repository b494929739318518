"""Counters and latency percentiles."""

from __future__ import annotations

import pytest

from simulators.stats import LatencyHistogram, Stats


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([0.010] * 100, 0.5, 0.010),
        ([i / 1000.0 for i in range(1, 101)], 0.5, 0.050),
        ([i / 1000.0 for i in range(1, 101)], 0.99, 0.099),
        ([0.001] * 99 + [2.0], 0.99, 0.001),
        ([0.001] * 98 + [2.0, 2.0], 0.99, 2.0),
    ],
)
def test_quantiles_within_two_percent(samples: list[float], q: float, expected: float) -> None:
    """Quantiles come out within the 2 % bucket resolution."""
    histogram = LatencyHistogram()
    for sample in samples:
        histogram.record(sample)
    assert histogram.quantile(q) == pytest.approx(expected, rel=0.02)


def test_empty_and_reset() -> None:
    """An empty histogram has no quantile; reset empties it."""
    histogram = LatencyHistogram()
    assert histogram.quantile(0.5) is None
    histogram.record(0.5)
    histogram.reset()
    assert histogram.count == 0
    assert histogram.quantile(0.99) is None


@pytest.mark.parametrize(
    ("field", "failed"),
    [("protocol_errors", True), ("callerrors_received", True), ("timeouts", True), (None, False)],
)
def test_failed_flag(field: str | None, failed: bool) -> None:
    """The run fails on protocol errors, CALLERRORs received or timeouts."""
    stats = Stats()
    if field is not None:
        setattr(stats, field, 1)
    assert stats.failed is failed


def test_summary_counters_and_error_notes() -> None:
    """The summary carries counters, latency percentiles and the first error notes."""
    stats = Stats(max_errors_kept=2)
    for i in range(5):
        stats.protocol_error("CP", f"bad {i}")
    stats.record_latency(0.004)
    summary = stats.as_dict()
    assert summary["protocol_errors"] == 5
    assert summary["errors"] == ["CP: bad 0", "CP: bad 1"]
    assert summary["latency_ms"]["p50"] == pytest.approx(4.0, rel=0.02)
