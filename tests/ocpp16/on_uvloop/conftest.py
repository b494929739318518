"""Tests here run on uvloop, the loop `csms serve` runs on when it is installed
(`pip install csms[speed]`); where it is not installed they are skipped, saying so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loops a test here may ask for with `@pytest.mark.asyncio(loop_factories=[...])`."""
    del config, item
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
