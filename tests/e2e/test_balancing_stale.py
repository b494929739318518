"""A stale meter freezes increases, end to end (docs/load-balancing.md, "Safety"): a
charger whose meter values stop is not given more current, even when another car leaves,
until its meter speaks again (evcc's overloadOnError, study §4.5)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.config import BalancingSettings
from tests.e2e.test_balancing import LIMIT_A, Site, allocations
from tests.support import RunningCsms, mqtt_of, running_csms, settings_for, subscribed

STALE = BalancingSettings(
    coalesce=0.05, increase_hold=0.001, resume_hold=0.001, tick=0.2, meter_stale=0.5
)
METERED = {"MeterValuesSampledData": "Current.Import", "MeterValueSampleInterval": 1}


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    settings = dataclasses.replace(settings_for(database_url), balancing=STALE)
    async with running_csms(settings) as running:
        yield running


async def sample_interval(csms: RunningCsms, cp: str, seconds: int) -> None:
    """MeterValueSampleInterval through the command API (0: no samples, OCPP 1.6 §9.1)."""
    async with csms.api() as api:
        body = {"key": "MeterValueSampleInterval", "value": str(seconds)}
        answer = await api.post(f"/charge-points/{cp}/commands/ChangeConfiguration", json=body)
        assert answer.json()["response"]["status"] == "Accepted", answer.text


async def meter_values_of(events: Any, cp: str, count: int) -> None:
    """Wait for `count` more meter.values events of charger `cp`."""

    def mine() -> int:
        return sum(1 for e in events.of("meter.values") if e["source"].endswith(f"/{cp}"))

    target = mine() + count
    while mine() < target:
        await events.until(len(events.of("meter.values")) + 1, of_type="meter.values")


async def test_a_stale_meter_freezes_increases_until_it_speaks(csms: RunningCsms) -> None:
    site = Site(csms, count=2, config=METERED)
    await site.start()
    quiet, leaving = (cp.identity for cp in site.chargers)
    balancer = csms.app.balancer
    mqtt = mqtt_of(csms)
    try:
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            await site.circuit(api)
            await site.plug(0)
            await site.plug(1)
            while (await allocations(csms)) != {quiet: 15.7, leaving: 15.7}:
                count = len(events.of("circuit.allocation")) + 1
                await events.until(count, of_type="circuit.allocation")
            # The first charger's meter goes quiet (after a reading: a charger that never
            # reports Current.Import is not checked); two samples of the other later, its
            # last reading is more than meter_stale (0.5 s) old.
            await meter_values_of(events, quiet, 1)
            await sample_interval(csms, quiet, 0)
            await meter_values_of(events, leaving, 2)
            site.chargers[1].stop_session(1)
            await events.until(1, of_type="session.stopped")
            passes = balancer.passes
            await balancer.wait_passes(passes + 5)
            assert (await allocations(csms)).get(quiet) == 15.7
            # It speaks again: the increase goes.
            await sample_interval(csms, quiet, 1)
            while (await allocations(csms)).get(quiet) != 31.5:
                count = len(events.of("circuit.allocation")) + 1
                await events.until(count, of_type="circuit.allocation")
    finally:
        await site.stop()
    assert site.worst <= LIMIT_A, site.worst
