"""A realistic EV charging power curve, integrated exactly so that energy always adds up.

The vehicle draws ``min(limit, curve(soc))`` where the curve is flat at ``max_power_w`` up
to ``taper_soc`` and then falls linearly to ``max_power_w * tail_fraction`` at 100 % state
of charge. Because the power only depends on the state of charge and a piecewise-constant
limit, the state of charge has a closed form (linear while flat or limited, exponential
on the taper), so integrating over ``[0, a]`` then ``[a, b]`` gives the same energy as
integrating over ``[0, b]`` at once, whatever the sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ChargeStep", "PowerCurve"]

_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class ChargeStep:
    """What happened over one integration interval."""

    energy_wh: float
    soc: float
    power_w: float  # instantaneous power at the end of the interval


@dataclass(frozen=True, slots=True)
class PowerCurve:
    """An EV battery with its onboard-charger limit and a taper near full."""

    capacity_wh: float
    max_power_w: float
    taper_soc: float = 0.8
    tail_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.capacity_wh <= 0 or self.max_power_w < 0:
            raise ValueError("capacity must be positive and power non-negative")
        if not 0.0 < self.taper_soc < 1.0 or not 0.0 <= self.tail_fraction <= 1.0:
            raise ValueError("taper_soc must be in (0, 1) and tail_fraction in [0, 1]")

    # P(soc) = a - b * soc on the taper
    @property
    def _b(self) -> float:
        return self.max_power_w * (1.0 - self.tail_fraction) / (1.0 - self.taper_soc)

    @property
    def _a(self) -> float:
        return self.max_power_w + self._b * self.taper_soc

    def curve_w(self, soc: float) -> float:
        """The power the vehicle accepts at ``soc`` without any external limit."""
        if soc < self.taper_soc:
            return self.max_power_w
        return max(0.0, self._a - self._b * min(soc, 1.0))

    def power_w(self, soc: float, limit_w: float, target_soc: float = 1.0) -> float:
        """The power drawn at ``soc`` under ``limit_w``; zero once ``target_soc`` is reached."""
        if soc >= target_soc - _EPS or limit_w <= 0.0:
            return 0.0
        return min(limit_w, self.curve_w(soc))

    def charge(
        self, soc: float, seconds: float, limit_w: float, target_soc: float = 1.0
    ) -> ChargeStep:
        """Integrate ``seconds`` of charging from ``soc`` under a constant ``limit_w``."""
        target = min(1.0, target_soc)
        start = soc
        remaining = max(0.0, seconds)
        joules_per_soc = self.capacity_wh * 3600.0  # W*s for the whole battery
        while remaining > _EPS and soc < target - _EPS:
            power = self.power_w(soc, limit_w, target)
            if power <= _EPS:
                break
            if soc < self.taper_soc:
                # flat part: power = min(limit, max) until the taper (or the target)
                end = min(self.taper_soc, target)
                needed = (end - soc) * joules_per_soc / power
                if needed >= remaining:
                    soc += power * remaining / joules_per_soc
                    remaining = 0.0
                else:
                    soc = end
                    remaining -= needed
                continue
            a, b = self._a, self._b
            if limit_w < a - b * soc - _EPS:
                # limited on the taper: constant power until the curve drops below the limit
                end = min(target, (a - limit_w) / b)
                needed = (end - soc) * joules_per_soc / limit_w
                if needed >= remaining:
                    soc += limit_w * remaining / joules_per_soc
                    remaining = 0.0
                else:
                    soc = end
                    remaining -= needed
                continue
            # free taper: d(soc)/dt = (a - b soc) / J  =>  a - b soc(t) = (a - b soc0) e^(-bt/J)
            gap0 = a - b * soc
            gap_target = a - b * target
            if gap_target <= _EPS:
                needed = math.inf
            else:
                needed = -(joules_per_soc / b) * math.log(gap_target / gap0)
            if needed >= remaining:
                soc = (a - gap0 * math.exp(-b * remaining / joules_per_soc)) / b
                remaining = 0.0
            else:
                soc = target
                remaining -= needed
        soc = min(soc, target) if soc > start else start
        energy = (soc - start) * self.capacity_wh
        return ChargeStep(energy, soc, self.power_w(soc, limit_w, target))
