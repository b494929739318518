"""The EV power curve: shape, limits, and energy that adds up however it is sampled."""

from __future__ import annotations

import math

import pytest

from simulators.power import PowerCurve

CURVE = PowerCurve(capacity_wh=60_000.0, max_power_w=11_000.0)


@pytest.mark.parametrize(
    ("soc", "limit", "expected"),
    [
        (0.1, 22_000.0, 11_000.0),
        (0.5, 7_000.0, 7_000.0),
        (0.8, 22_000.0, 11_000.0),
        (0.9, 22_000.0, 11_000.0 * (1 - 0.5 * 0.85)),
        (1.0, 22_000.0, 0.0),
        (0.5, 0.0, 0.0),
    ],
)
def test_power_shape(soc: float, limit: float, expected: float) -> None:
    """Flat up to the taper, then linear down; capped by the limit; zero when full."""
    assert CURVE.power_w(soc, limit) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("soc", "seconds", "limit", "energy"),
    [
        (0.2, 3600.0, 22_000.0, 11_000.0),  # flat: P x t
        (0.2, 1800.0, 3_700.0, 1_850.0),  # limited
        (0.2, 0.0, 22_000.0, 0.0),
    ],
)
def test_flat_part_is_power_times_time(
    soc: float, seconds: float, limit: float, energy: float
) -> None:
    """Below the taper the energy is exactly power x time."""
    assert CURVE.charge(soc, seconds, limit).energy_wh == pytest.approx(energy)


@pytest.mark.parametrize("target", [0.7, 0.85, 0.95, 1.0])
def test_never_exceeds_target(target: float) -> None:
    """A long session stops at the target state of charge, delivering exactly what was missing."""
    step = CURVE.charge(0.3, 100 * 3600.0, 22_000.0, target)
    if target < 1.0:
        assert step.soc == pytest.approx(target)
        assert step.energy_wh == pytest.approx((target - 0.3) * 60_000.0)
        assert step.power_w == 0.0
    else:
        assert step.soc <= 1.0


@pytest.mark.parametrize(
    ("soc", "limit", "splits"),
    [
        (0.1, 22_000.0, [600.0] * 40),
        (0.5, 22_000.0, [61.0, 3.0, 1234.5, 7200.0, 900.0, 13.0, 5000.0]),
        (0.79, 9_000.0, [10.0] * 500),
        (0.85, 4_000.0, [300.0, 300.0, 3600.0, 1.0]),
    ],
)
def test_energy_adds_up_whatever_the_sampling(
    soc: float, limit: float, splits: list[float]
) -> None:
    """Integrating interval by interval gives the same energy and SoC as one long interval."""
    total = 0.0
    current = soc
    for seconds in splits:
        step = CURVE.charge(current, seconds, limit, 0.97)
        total += step.energy_wh
        current = step.soc
    whole = CURVE.charge(soc, sum(splits), limit, 0.97)
    assert total == pytest.approx(whole.energy_wh, rel=1e-9, abs=1e-6)
    assert current == pytest.approx(whole.soc, rel=1e-9)
    assert total == pytest.approx((current - soc) * CURVE.capacity_wh, rel=1e-9)


def test_taper_matches_numeric_integration() -> None:
    """The closed form on the taper agrees with a fine numeric integration."""
    soc, energy, dt = 0.82, 0.0, 0.5
    for _ in range(int(3600 / dt)):
        power = CURVE.power_w(soc, math.inf)
        energy += power * dt / 3600.0
        soc += power * dt / 3600.0 / CURVE.capacity_wh
    exact = CURVE.charge(0.82, 3600.0, math.inf)
    assert exact.energy_wh == pytest.approx(energy, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity_wh": 0.0, "max_power_w": 1.0},
        {"capacity_wh": 1.0, "max_power_w": -1.0},
        {"capacity_wh": 1.0, "max_power_w": 1.0, "taper_soc": 1.0},
    ],
)
def test_invalid_curves_rejected(kwargs: dict[str, float]) -> None:
    """Nonsensical battery or curve parameters raise."""
    with pytest.raises(ValueError, match="must be"):
        PowerCurve(**kwargs)
