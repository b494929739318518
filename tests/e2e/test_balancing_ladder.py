"""The fallback ladder end to end (docs/load-balancing.md, "Profiles the balancer sends"):
simulated chargers that reject profiles the way real ones do, and the rung csms settles on.

TxProfile at stack level 1 → TxProfile at 0 → TxDefaultProfile on the connector →
ChargePointMaxProfile (one-connector chargers) → uncontrollable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from csms.config import BalancingSettings
from simulators import Charger
from simulators.model import SessionState
from tests.e2e.test_balancing import CAR, WAIT
from tests.support import RunningCsms, mqtt_of, running_csms, settings_for, subscribed

# No retries of a rejected safe default during a test: only the ladder's messages.
LADDER = BalancingSettings(
    coalesce=0.05, increase_hold=0.001, resume_hold=0.001, tick=3600, default_retry=3600
)


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    settings = dataclasses.replace(settings_for(database_url), balancing=LADDER)
    async with running_csms(settings) as running:
        yield running


async def charging(csms: RunningCsms, quirks: list[str], connectors: int = 1) -> Charger:
    """A charger with `quirks`, alone on a 20 A circuit (19.5 A to share), a car charging
    on connector 1."""
    cp = Charger(url=csms.ocpp_url, identity="LB-L", connectors=connectors, quirks=quirks)
    await cp.connect(timeout=WAIT)
    assert (await cp.boot(timeout=WAIT))["status"] == "Accepted"
    for connector in range(connectors + 1):
        await cp.status(connector, "Available")
    async with csms.api() as api:
        await api.put("/id-tags/TAG-L", json={"status": "Accepted"})
        member = {"chargePointId": "LB-L", "maxCurrentA": 16}
        body = {"name": "site", "phaseLimitsA": [20] * 3, "members": [member]}
        assert (await api.put("/circuits/site", json=body)).status_code == 201
    await cp.next_incoming("SetChargingProfile", timeout=WAIT)  # the safe default
    assert cp.plug_in(1, "TAG-L", ev=CAR, dwell=3600)

    def started() -> bool:
        session = cp.core.connectors[1].session
        return session is not None and session.state is SessionState.CHARGING

    await cp.wait_for(started, timeout=WAIT)
    return cp


async def accepted_profile(cp: Charger) -> dict[str, object]:
    """The first balancer profile (not the safe default) the charger accepts."""
    while True:
        call = await cp.next_incoming("SetChargingProfile", timeout=WAIT)
        profile = call.payload["csChargingProfiles"]
        if profile["chargingProfileId"] != 9100 and call.response == {"status": "Accepted"}:
            return {"connectorId": call.payload["connectorId"], **profile}


async def test_stack_level_zero_only_gets_its_tx_profile_at_level_0(csms: RunningCsms) -> None:
    cp = await charging(csms, ["stack_level_zero_only"])
    try:
        profile = await accepted_profile(cp)
        assert (profile["chargingProfilePurpose"], profile["stackLevel"]) == ("TxProfile", 0)
        assert profile["chargingProfileId"] == 9001
    finally:
        await cp.close()


async def test_no_tx_profile_goes_down_to_tx_default_on_the_connector(csms: RunningCsms) -> None:
    cp = await charging(csms, ["rejects_tx_profile"])
    try:
        profile = await accepted_profile(cp)
        assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
        assert (profile["connectorId"], profile["chargingProfileId"]) == (1, 9001)
        assert profile["stackLevel"] == 1  # above the safe default at 0
        session = cp.core.connectors[1].session
        assert session is not None
        await cp.wait_for(lambda: session.limit_w == pytest.approx(16 * 230 * 3), timeout=WAIT)
    finally:
        await cp.close()


async def test_one_connector_without_tx_profiles_gets_charge_point_max(
    csms: RunningCsms,
) -> None:
    cp = await charging(csms, ["rejects_tx_profile", "rejects_tx_default"])
    try:
        profile = await accepted_profile(cp)
        assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile"
        assert (profile["connectorId"], profile["chargingProfileId"]) == (0, 9000)
    finally:
        await cp.close()


async def test_two_connectors_rejecting_everything_are_uncontrollable(csms: RunningCsms) -> None:
    """ChargePointMaxProfile would limit both connectors together: not a rung for them.
    Counted at its maximum and reported."""
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        cp = await charging(csms, ["rejects_tx_profile", "rejects_tx_default"], connectors=2)
        try:
            [report] = await events.until(1, of_type="circuit.member.uncontrollable")
            assert report["source"] == "/charge-points/LB-L"
            data = report["data"]
            assert (data["reason"], data["strategy"]) == ("rejected", "tx_default_conn")
            assert data["countedA"] == 16
            assert data["connectorId"] is None
            purposes = {
                call.payload["csChargingProfiles"]["chargingProfilePurpose"]
                for call in cp.incoming()
                if call.action == "SetChargingProfile"
            }
            assert "ChargePointMaxProfile" not in purposes
        finally:
            await cp.close()
