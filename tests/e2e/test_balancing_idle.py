"""Full cars and more cars than minimum slots, end to end (docs/load-balancing.md, "Idle
cars and rotation"): ten simulated chargers on 32 A/phase, the README's demo in small.

Three cars are nearly full and go SuspendedEV after a few seconds; seven want more than the
five 6 A slots that 31.5 A holds. Every car must get energy (the full ones give their slots
away, then the slots rotate), and the oracle of tests/e2e/test_balancing.py (what the
simulated cars draw, summed per phase) must stay under the fuse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.config import BalancingSettings
from simulators.model import EvSpec
from tests.api.test_metrics import samples, scrape, value
from tests.e2e.test_balancing import CAR, LIMIT_A, RAMP, WAIT, Site
from tests.support import RunningCsms, mqtt_of, running_csms, settings_for, subscribed

# Seconds, scaled down like the demo's: a car is idle after 1 s of drawing nothing, and a
# slot rotates after 3 s.
ROTATING = BalancingSettings(
    coalesce=0.05,
    increase_hold=0.001,
    resume_hold=0.001,
    tick=0.5,
    idle_after=1.0,
    rotate=3.0,
    overdraw_grace=3600,
)
METERED = {"MeterValuesSampledData": "Current.Import", "MeterValueSampleInterval": 1}
# 5 Wh to go: a few seconds at 6 A, then SuspendedEV.
NEARLY_FULL = EvSpec(capacity_wh=500.0, max_power_w=22_080.0, soc_start=0.49, soc_target=0.5)
FULL = 3


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    settings = dataclasses.replace(settings_for(database_url), balancing=ROTATING)
    async with running_csms(settings) as running:
        yield running


def energy(site: Site, n: int) -> float:
    session = site.chargers[n].core.connectors[1].session
    return 0.0 if session is None else session.energy_wh


async def test_every_car_charges_and_the_fuse_holds(csms: RunningCsms) -> None:
    site = Site(csms, count=10, config=METERED)
    await site.start()
    mqtt = mqtt_of(csms)
    try:
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            await site.circuit(api)
            for n in range(10):
                await site.plug(n, NEARLY_FULL if n < FULL else CAR)
            for n, cp in enumerate(site.chargers):
                await cp.wait_for(lambda n=n: energy(site, n) > 0, timeout=WAIT)
            sent = events.of("circuit.allocation")
            await check_events(sent, site)
            # The profile budget on /metrics: every change on MQTT was a profile accepted
            # (counted before its event is written), and a safe default per charger.
            found = samples(await scrape(csms))
            changes = sum(
                value(found, "csms_balancer_profiles_total", kind=kind, outcome="accepted")
                for kind in ("decrease", "increase")
            )
            assert changes >= len(sent)
            defaults = value(
                found, "csms_balancer_profiles_total", kind="default", outcome="accepted"
            )
            assert defaults == 10
            assert value(found, "csms_balancer_connectors") == 10
    finally:
        await site.stop()
    # Decreases are confirmed before increases, and new sessions start at the safe share
    # (0 A here): the cars never draw more than the fuse, not even for a ramp.
    assert site.worst <= LIMIT_A, site.worst


async def check_events(found: list[dict[str, Any]], site: Site) -> None:
    """`circuit.allocation` on MQTT: one per accepted change, with the fields docs/events.md
    names, never between 0 and 6 A, and the full cars released with a reason."""
    assert found
    identities = {cp.identity for cp in site.chargers}
    for event in found:
        data = event["data"]
        assert event["source"].removeprefix("/charge-points/") in identities
        assert set(data) == {
            "circuitId",
            "connectorId",
            "limitA",
            "previousA",
            "phases",
            "transactionId",
            "reason",
        }
        assert data["phases"] == 3  # three-phase cars on three-phase members
        assert data["circuitId"] == "site"
        assert data["connectorId"] == 1
        assert data["limitA"] == 0 or data["limitA"] >= 6
        assert data["limitA"] != data["previousA"]
        assert isinstance(data["transactionId"], int)
    by_charger: dict[str, list[dict[str, Any]]] = {}
    for event in found:
        by_charger.setdefault(event["source"].removeprefix("/charge-points/"), []).append(
            event["data"]
        )
    for n in range(FULL):
        changes = by_charger[site.chargers[n].identity]
        # Served first, then released once full: a decrease to 0, queued behind the others.
        assert changes[0]["limitA"] >= 6
        assert any(c["limitA"] == 0 and c["reason"].startswith("queued") for c in changes)
    # The seven hungry cars share five slots: someone's slot was rotated away.
    hungry = [by_charger[cp.identity] for cp in site.chargers[FULL:]]
    assert any(c["limitA"] == 0 and c["previousA"] for changes in hungry for c in changes)


async def test_a_full_car_is_held_at_its_minimum_when_nobody_needs_more(
    csms: RunningCsms,
) -> None:
    """Two cars share 31.5 A; once the first is full it keeps 6 A (`reason` `idle`, so it
    can resume) and the other takes the rest: both on MQTT as `circuit.allocation`."""
    site = Site(csms, count=2, config=METERED)
    await site.start()
    mqtt = mqtt_of(csms)
    full, hungry = (cp.identity for cp in site.chargers)
    try:
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
            # The safe default first (15.7 A each): without it a car draws 32 A.
            await site.circuit(api)
            await site.plug(0, NEARLY_FULL)
            await site.plug(1)

            def latest() -> dict[str, dict[str, Any]]:
                found = {}
                for event in events.of("circuit.allocation"):
                    found[event["source"].removeprefix("/charge-points/")] = event["data"]
                return found

            for _ in range(100):
                now = latest()
                if now.get(full, {}).get("reason") == "idle" and hungry in now:
                    if now[hungry]["limitA"] == 25.5:
                        break
                count = len(events.of("circuit.allocation")) + 1
                await events.until(count, of_type="circuit.allocation")
            now = latest()
            assert (now[full]["limitA"], now[full]["reason"]) == (6.0, "idle")
            assert (now[hungry]["limitA"], now[hungry]["reason"]) == (25.5, "circuit site L1 full")
    finally:
        await site.stop()
    # A new session starts at the safe share while the other still holds more: over the
    # fuse only for the bounded ramp until its decrease lands (tests/e2e/test_balancing.py).
    assert site.longest_over <= RAMP, (site.longest_over, site.worst)
