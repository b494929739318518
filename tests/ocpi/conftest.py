"""Fixtures: a csms with its OCPI listener on, and a test eMSP beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.ocpi_partner import FakeEmsp, ocpi_settings, running_emsp
from tests.support import RunningCsms, running_csms, settings_for


@pytest.fixture
async def roaming(database_url: str) -> AsyncIterator[RunningCsms]:
    """A real csms with the OCPI listener on."""
    async with running_csms(settings_for(database_url, ocpi=ocpi_settings())) as running:
        yield running


@pytest.fixture
async def emsp() -> AsyncIterator[FakeEmsp]:
    async with running_emsp() as partner:
        yield partner
