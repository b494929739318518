"""Fixtures for the simulator's own tests."""

from __future__ import annotations

import pytest

from simulators.testing import Bench, make_station


@pytest.fixture
def bench() -> Bench:
    """A booted two-connector station on a bench, every Status reported."""
    return Bench(make_station()).start()
