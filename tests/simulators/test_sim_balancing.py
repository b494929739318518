"""The simulator under profiles as a load-balancing test bench: a shared ChargePointMax,
the car's phases and minimum, minChargingRate, and the quirk flags."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.model import EvSpec
from simulators.testing import Bench, make_station
from tests.simulators.helpers import plug

# A car that wants 22 kW (32 A on three phases) from a large battery: never tapering here.
BIG = EvSpec(capacity_wh=200_000.0, max_power_w=22_080.0, soc_start=0.1)
VOLTS = 230.0


def setup(*quirks: str) -> Bench:
    return Bench(make_station(quirks=quirks)).start()


def profile(
    connector: int, purpose: str, limit: float, *, periods: int = 1, unit: str = "A", **extra: Any
) -> dict[str, Any]:
    return {
        "connectorId": connector,
        "csChargingProfiles": {
            "chargingProfileId": 100 + connector + len(purpose),
            "stackLevel": 1,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [
                    {"startPeriod": i * 600, "limit": limit} for i in range(periods)
                ],
                **extra,
            },
        },
    }


def amps(bench: Bench, connector: int) -> float:
    """What the car on a connector draws per phase."""
    session = bench.station.connectors[connector].session
    assert session is not None
    return session.power_w / (VOLTS * session.ev.phases)


def set_profile(bench: Bench, payload: dict[str, Any]) -> str:
    frame = bench.send("SetChargingProfile", payload)
    assert frame[0] == 3, frame
    status: str = frame[2]["status"]
    return status


def test_charge_point_max_is_shared_by_the_connectors() -> None:
    """A 32 A ChargePointMaxProfile feeds two cars 16 A each, not 32 A each."""
    bench = setup()
    assert set_profile(bench, profile(0, "ChargePointMaxProfile", 32)) == "Accepted"
    plug(bench, 1, ev=BIG)
    assert amps(bench, 1) == pytest.approx(32)
    plug(bench, 2, "TAG2", ev=BIG)
    assert amps(bench, 1) == pytest.approx(16)
    assert amps(bench, 2) == pytest.approx(16)


def test_single_phase_car_draws_its_limit_on_one_phase() -> None:
    """A single-phase car under a 16 A limit draws 16 A on one phase (3.68 kW)."""
    bench = setup()
    plug(bench, 1, ev=EvSpec(capacity_wh=200_000.0, max_power_w=7_400.0, phases=1))
    assert set_profile(bench, profile(1, "TxDefaultProfile", 16)) == "Accepted"
    session = bench.station.connectors[1].session
    assert session is not None
    assert session.power_w == pytest.approx(16 * VOLTS)


@pytest.mark.parametrize(
    ("limit", "extra", "expected"),
    [
        (8.0, {}, 8.0),
        (5.0, {}, 0.0),
        (8.0, {"minChargingRate": 10.0}, 0.0),
        (12.0, {"minChargingRate": 10.0}, 12.0),
    ],
    ids=["above 6 A", "below the car's 6 A", "below minChargingRate", "above minChargingRate"],
)
def test_minimums(limit: float, extra: dict[str, Any], expected: float) -> None:
    """Below the car's 6 A or the profile's minChargingRate the car pauses."""
    bench = setup()
    plug(bench, 1, ev=BIG)
    assert set_profile(bench, profile(1, "TxDefaultProfile", limit, **extra)) == "Accepted"
    assert amps(bench, 1) == pytest.approx(expected)


def test_quirk_ignores_tx_default() -> None:
    """A charger with ignores_tx_default accepts the profile and charges at full power."""
    bench = setup("ignores_tx_default")
    plug(bench, 1, ev=BIG)
    assert set_profile(bench, profile(0, "TxDefaultProfile", 10)) == "Accepted"
    assert amps(bench, 1) == pytest.approx(32)


def test_quirk_overdraws() -> None:
    """A charger with overdraws accepts a TxProfile and draws what the car wants."""
    bench = setup("overdraws")
    plug(bench, 1, ev=BIG)
    session = bench.station.connectors[1].session
    assert session is not None
    tx = profile(1, "TxProfile", 10)
    tx["csChargingProfiles"]["transactionId"] = session.transaction_id
    assert set_profile(bench, tx) == "Accepted"
    assert amps(bench, 1) == pytest.approx(32)


def test_quirk_amps_only() -> None:
    """A charger with amps_only says so in its configuration and rejects W profiles."""
    bench = setup("amps_only")
    assert set_profile(bench, profile(0, "TxDefaultProfile", 11000, unit="W")) == "Rejected"
    assert set_profile(bench, profile(0, "TxDefaultProfile", 16)) == "Accepted"
    keys = bench.send("GetConfiguration", {"key": ["ChargingScheduleAllowedChargingRateUnit"]})
    assert keys[2]["configurationKey"][0]["value"] == "Current"


def test_quirk_one_period() -> None:
    """A charger with one_period reports ChargingScheduleMaxPeriods 1 and keeps to it."""
    bench = setup("one_period")
    assert set_profile(bench, profile(0, "TxDefaultProfile", 16, periods=2)) == "Rejected"
    assert set_profile(bench, profile(0, "TxDefaultProfile", 16)) == "Accepted"
    keys = bench.send("GetConfiguration", {"key": ["ChargingScheduleMaxPeriods"]})
    assert keys[2]["configurationKey"][0]["value"] == "1"
