"""The safe default on chargers that do not take it on connector 0, end to end
(docs/load-balancing.md, "Profiles the balancer sends"): one per connector, and retries with
backoff until the charger holds it."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator

import pytest

from csms.config import BalancingSettings
from simulators import Charger
from simulators.model import IncomingCall
from tests.support import MS, RunningCsms, running_csms, settings_for

WAIT = 20_000 * MS
RETRY = 0.2  # the first retry's delay, seconds; then 0.4, 0.8 ...
SETTINGS = BalancingSettings(coalesce=0.05, tick=3600, default_retry=RETRY)


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    settings = dataclasses.replace(settings_for(database_url), balancing=SETTINGS)
    async with running_csms(settings) as running:
        yield running


async def member(csms: RunningCsms, quirk: str) -> Charger:
    """A two-connector charger with `quirk`, the whole of it on a 32 A circuit."""
    cp = Charger(url=csms.ocpp_url, identity="LB-Q", connectors=2, quirks=[quirk])
    await cp.connect(timeout=WAIT)
    assert (await cp.boot(timeout=WAIT))["status"] == "Accepted"
    for connector in (0, 1, 2):
        await cp.status(connector, "Available")
    async with csms.api() as api:
        body = {"name": "site", "phaseLimitsA": [32] * 3, "members": [{"chargePointId": "LB-Q"}]}
        assert (await api.put("/circuits/site", json=body)).status_code == 201
    return cp


async def defaults_sent(cp: Charger, count: int) -> list[tuple[float, IncomingCall]]:
    """The next `count` safe defaults the charger was sent, with when they came."""
    found = []
    loop = asyncio.get_running_loop()
    while len(found) < count:
        call = await cp.next_incoming("SetChargingProfile", timeout=WAIT)
        if call.payload["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile":
            found.append((loop.time(), call))
    return found


async def test_rejected_on_connector_0_it_goes_on_each_connector(csms: RunningCsms) -> None:
    cp = await member(csms, "rejects_connector0")
    try:
        first, one, two = await defaults_sent(cp, 3)
        assert first[1].payload["connectorId"] == 0
        assert first[1].response == {"status": "Rejected"}
        assert [c.payload["connectorId"] for _, c in (one, two)] == [1, 2]
        assert all(c.response == {"status": "Accepted"} for _, c in (one, two))
        held = cp.core.profiles.profiles
        # Own ids (a profile replaces any other of its id), the safe share of 31.5 A / 2.
        assert {held[9101].connector_id, held[9102].connector_id} == {1, 2}
        assert held[9101].periods[0].limit == pytest.approx(15.7)
        assert 9100 not in held
    finally:
        await cp.close()


async def test_a_default_not_taken_is_retried_with_backoff(csms: RunningCsms) -> None:
    """Rejected everywhere: sent again after 0.2, 0.4, 0.8 s (doubling), until the charger
    takes it."""
    cp = await member(csms, "rejects_tx_default")
    try:
        # Connector 0, then connectors 1 and 2 at once; then per connector at each retry.
        sent = await defaults_sent(cp, 9)
        assert [c.payload["connectorId"] for _, c in sent] == [0, 1, 2, 1, 2, 1, 2, 1, 2]
        assert all(c.response == {"status": "Rejected"} for _, c in sent)
        starts = [sent[i][0] for i in (1, 3, 5, 7)]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        for n, gap in enumerate(gaps):
            assert gap >= RETRY * 2**n * 0.9, gaps
        # The charger mends its ways: the next retry is taken.
        cp.core.profiles.quirks = frozenset()
        taken = await defaults_sent(cp, 2)
        assert all(c.response == {"status": "Accepted"} for _, c in taken)
        await cp.wait_for(lambda: 9102 in cp.core.profiles.profiles, timeout=WAIT)
    finally:
        await cp.close()
