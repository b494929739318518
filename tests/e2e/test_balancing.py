"""Load balancing end to end: simulated chargers on a 32 A/phase circuit, the real csms.

The oracle is what the simulated cars draw, summed per phase at the circuit, checked when a
car starts and after every profile any charger applies: under the limit except during a
bounded ramp. A ramp happens when a new session starts at the safe share while the others
still hold more; it lasts until their decreases land (a coalescing window and one round
trip), and is bounded by RAMP here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from csms.config import BalancingSettings
from simulators import Charger
from simulators.model import EvSpec, SessionState
from tests.support import MS, RunningCsms, mqtt_of, running_csms, settings_for, subscribed

WAIT = 20_000 * MS
# The longest the circuit may be over its limit: coalescing (50 ms here) and a round trip,
# on a machine that may be busy.
RAMP = 5_000 * MS
LIMIT_A = 32.0
VOLTS = 230.0
CAR = EvSpec(capacity_wh=200_000.0, max_power_w=22_080.0, soc_start=0.1)
FAST = BalancingSettings(coalesce=0.05, increase_hold=0.001, resume_hold=0.001, tick=3600)


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    settings = dataclasses.replace(settings_for(database_url), balancing=FAST)
    async with running_csms(settings) as running:
        yield running


class Site:
    """Ten one-connector chargers on one circuit, and the oracle watching them."""

    def __init__(
        self,
        csms: RunningCsms,
        count: int = 10,
        quirks: dict[int, str] | None = None,
        config: dict[str, Any] | None = None,
    ):
        self.csms = csms
        self.chargers = [
            Charger(
                url=csms.ocpp_url,
                identity=f"LB-{n:02d}",
                connectors=1,
                quirks=[quirks[n]] if quirks and n in quirks else [],
                config=config,
            )
            for n in range(count)
        ]
        self.profiles: Counter[str] = Counter()
        self.worst = 0.0
        self.longest_over = 0.0
        self._over_since: float | None = None
        self._watchers: list[asyncio.Task[None]] = []

    def drawn(self) -> list[float]:
        """Amps per grid phase the cars draw now (all chargers wired RST)."""
        total = [0.0, 0.0, 0.0]
        for cp in self.chargers:
            session = cp.core.connectors[1].session
            if session is None or session.state is not SessionState.CHARGING:
                continue
            amps = session.power_w / (VOLTS * session.ev.phases)
            for phase in range(session.ev.phases):
                total[phase] += amps
        return total

    async def _watch(self, cp: Charger) -> None:
        while True:
            await cp.next_incoming("SetChargingProfile", timeout=3600)
            self.profiles[cp.identity] += 1
            self.observe()

    def observe(self) -> None:
        """Check the sum now: note how long the circuit has been over its limit."""
        now = asyncio.get_running_loop().time()
        drawn = max(self.drawn())
        self.worst = max(self.worst, drawn)
        if drawn > LIMIT_A + 1e-9:
            if self._over_since is None:
                self._over_since = now
            self.longest_over = max(self.longest_over, now - self._over_since)
        elif self._over_since is not None:
            self.longest_over = max(self.longest_over, now - self._over_since)
            self._over_since = None

    async def plug(self, n: int, ev: EvSpec = CAR) -> None:
        """A car arrives at charger n; the oracle looks once it charges."""
        cp = self.chargers[n]
        assert cp.plug_in(1, f"TAG-{n:02d}", ev=ev, dwell=3600)

        def charging() -> bool:
            session = cp.core.connectors[1].session
            return session is not None and session.state is SessionState.CHARGING

        await cp.wait_for(charging, timeout=WAIT)
        self.observe()

    async def circuit(
        self, api: Any, count: int | None = None, limit_a: float = LIMIT_A, **member: Any
    ) -> None:
        """PUT the circuit `site` over the first `count` chargers (all by default), each
        member with the fields in `member`, and wait until each has its safe default."""
        chargers = self.chargers[:count]
        members = [{"chargePointId": cp.identity, **member} for cp in chargers]
        body = {"name": "site", "phaseLimitsA": [limit_a] * 3, "members": members}
        assert (await api.put("/circuits/site", json=body)).status_code == 201
        for cp in chargers:
            await cp.wait_for(lambda cp=cp: len(cp.core.profiles) >= 1, timeout=WAIT)

    async def start(self) -> None:
        async with self.csms.api() as api:
            for n in range(len(self.chargers)):
                await api.put(f"/id-tags/TAG-{n:02d}", json={"status": "Accepted"})
        for cp in self.chargers:
            await cp.connect(timeout=WAIT)
            assert (await cp.boot(timeout=WAIT))["status"] == "Accepted"
            await cp.status(0, "Available")
            await cp.status(1, "Available")
            self._watchers.append(asyncio.create_task(self._watch(cp)))

    async def stop(self) -> None:
        for task in self._watchers:
            task.cancel()
        for cp in self.chargers:
            await cp.close()

    def limit_of(self, n: int) -> float:
        """The limit the simulated charger applies to its session now (A per phase)."""
        cp = self.chargers[n]
        session = cp.core.connectors[1].session
        assert session is not None
        return session.limit_w / (VOLTS * session.ev.phases)


@pytest.fixture
async def site(csms: RunningCsms) -> AsyncIterator[Site]:
    site = Site(csms)
    await site.start()
    try:
        yield site
    finally:
        await site.stop()


async def allocations(csms: RunningCsms) -> dict[str, float]:
    async with csms.api() as api:
        body = (await api.get("/circuits/site/allocation")).json()
    return {row["chargePointId"]: row["limitA"] for row in body["connectors"]}


async def settle(csms: RunningCsms, events: Any, count: int) -> list[dict[str, Any]]:
    """Wait for `count` circuit.allocation events in all."""
    found: list[dict[str, Any]] = await events.until(count, of_type="circuit.allocation")
    return found


async def test_cascade_of_ten_stays_under_the_fuse(csms: RunningCsms, site: Site) -> None:
    """Ten cars arrive one by one and five leave: the per-phase sum never passes 32 A, cars
    that cannot get 6 A wait at 0, shares are fair, and each connector gets a bounded
    number of profiles."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await site.circuit(api)
        for cp in site.chargers:
            # The safe default first: (32 - 0.5) / 10 is below 6 A, so new sessions pause.
            assert cp.core.profiles.limit_w(1, 0.0, None, False)[0] == 0.0
        seen = 0
        for n in range(len(site.chargers)):
            await site.plug(n)
            seen = len(await events.until(seen + 1, of_type="circuit.allocation"))
            assert max(site.drawn()) <= LIMIT_A
        # Five cars fit at 6 A (30 of 31.5 A); the others are queued at 0, never below 6 A.
        final = await allocations(csms)
        for _ in range(50):
            if sum(1 for v in final.values() if v > 0) == 5:
                break
            await events.until(
                len(events.of("circuit.allocation")) + 1, of_type="circuit.allocation"
            )
            final = await allocations(csms)
        granted = sorted(v for v in final.values() if v > 0)
        assert granted == [6.3] * 5
        assert all(v == 0 or v >= 6 for v in final.values())
        # The first five leave: the queued five take their places.
        for cp in site.chargers[:5]:
            cp.stop_session(1)
        for _ in range(100):
            final = await allocations(csms)
            waiting = [site.chargers[n].identity for n in range(5, 10)]
            if all(final.get(identity, 0) >= 6 for identity in waiting):
                break
            await events.until(
                len(events.of("circuit.allocation")) + 1, of_type="circuit.allocation"
            )
        assert [final[site.chargers[n].identity] for n in range(5, 10)] == [6.3] * 5
        for n in range(5, 10):
            await site.chargers[n].wait_for(lambda n=n: site.limit_of(n) > 6, timeout=WAIT)
        assert max(site.drawn()) <= LIMIT_A
    # The safe share is 0 here (31.5 A over ten is below 6 A): no ramp at all.
    assert site.worst <= LIMIT_A, site.worst
    # Each connector: the probe's default, then one profile per change it saw at most.
    assert max(site.profiles.values()) <= 12, site.profiles


async def until_allocated(csms: RunningCsms, events: Any, wanted: dict[str, float]) -> None:
    """Wait (on circuit.allocation events) until these chargers hold these limits."""
    found: dict[str, float] = {}
    try:
        for _ in range(200):
            found = await allocations(csms)
            if all(found.get(cp) == limit for cp, limit in wanted.items()):
                return
            count = len(events.of("circuit.allocation")) + 1
            await events.until(count, of_type="circuit.allocation")
    except TimeoutError:
        pass
    raise AssertionError(f"{found} never became {wanted}")


async def test_offline_charger_keeps_its_capacity(csms: RunningCsms, site: Site) -> None:
    """A charger that drops off mid-session keeps its limit reserved: a newcomer shares only
    what is left, and the sum at the circuit, the offline car included, stays under 32 A."""
    mqtt = mqtt_of(csms)
    first, second, third, fourth = site.chargers[:4]
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
        await site.circuit(api, count=4)
        for n in range(3):
            await site.plug(n)
        await until_allocated(csms, events, {cp.identity: 10.5 for cp in (first, second, third)})
        await first.disconnect()
        await site.plug(3)
        # The offline charger still runs its 10.5 A TxProfile: 21 A left for three cars.
        await until_allocated(
            csms, events, {second.identity: 7.0, third.identity: 7.0, fourth.identity: 7.0}
        )
        await fourth.wait_for(lambda: site.limit_of(3) == pytest.approx(7.0), timeout=WAIT)
        assert site.limit_of(0) == pytest.approx(10.5)
        assert sum(site.drawn()) / 3 <= LIMIT_A
        assert max(site.drawn()) <= LIMIT_A
        # Back online: it comes down to a fair share (31.5 / 4, rounded down to 0.1 A); the
        # others would gain 0.8 A, below the 1 A an increase must be worth: they stay.
        await first.connect(timeout=WAIT)
        await first.boot(timeout=WAIT)
        await until_allocated(
            csms,
            events,
            {first.identity: 7.8, second.identity: 7.0, third.identity: 7.0, fourth.identity: 7.0},
        )
        assert max(site.drawn()) <= LIMIT_A
    assert site.longest_over <= RAMP, (site.longest_over, site.worst)
    assert site._over_since is None


QUIRKY = BalancingSettings(
    coalesce=0.05, increase_hold=0.001, resume_hold=0.001, tick=3600, overdraw_grace=0.0
)


async def test_one_charger_per_quirk(database_url: str) -> None:
    """A charger per quirk on a 63 A circuit: the one that ignores TxDefaultProfile is
    held by its TxProfile, the amps-only one gets amps, the one-period one gets one period
    with validTo, and the one that overdraws is reported and counted at its draw, so the
    others make room."""
    settings = dataclasses.replace(settings_for(database_url), balancing=QUIRKY)
    quirks = {1: "ignores_tx_default", 2: "overdraws", 3: "amps_only", 4: "one_period"}
    config = {"MeterValuesSampledData": "Current.Import", "MeterValueSampleInterval": 1}
    async with running_csms(settings) as csms:
        site = Site(csms, count=5, quirks=quirks, config=config)
        await site.start()
        mqtt = mqtt_of(csms)
        try:
            async with subscribed(mqtt.url, mqtt.topic_prefix) as events, csms.api() as api:
                await site.circuit(api, limit_a=63, maxCurrentA=16)
                for n in range(5):
                    await site.plug(n)
                # 62.5 A over five: 12.5 A each.
                await until_allocated(csms, events, {cp.identity: 12.5 for cp in site.chargers})
                one_period = site.chargers[4].core.profiles.profiles[9001]
                assert len(one_period.periods) == 1
                assert one_period.valid_to is not None
                assert site.chargers[3].core.profiles.profiles[9001].unit.value == "A"
                await site.chargers[1].wait_for(
                    lambda: site.limit_of(1) == pytest.approx(12.5), timeout=WAIT
                )
                # The overdrawing charger draws 32 A whatever it accepted: reported, then
                # counted at 32 A, so the other four share 30.5 A (7.6 A each).
                [report] = await events.until(1, of_type="circuit.member.uncontrollable")
                assert report["data"]["reason"] == "overdraw"
                assert report["source"] == "/charge-points/LB-02"
                others = [cp.identity for n, cp in enumerate(site.chargers) if n != 2]
                await until_allocated(csms, events, dict.fromkeys(others, 7.6))
                for n in (0, 1, 3, 4):
                    await site.chargers[n].wait_for(
                        lambda n=n: site.limit_of(n) == pytest.approx(7.6), timeout=WAIT
                    )
                assert max(site.drawn()) <= 63
                learned = (await api.get("/circuits/site/allocation")).json()
                assert {c["chargePointId"] for c in learned["connectors"]} >= set(others)
        finally:
            await site.stop()
