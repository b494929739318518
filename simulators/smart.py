"""Smart charging (OCPP 1.6 §3.13): stored charging profiles, stacking, composite schedules,
and the charger's Set/ClearChargingProfile and GetCompositeSchedule.

The profile store is pure and synchronous. Times are POSIX seconds on the simulated clock
(floats); limits are evaluated in watts using the charger's nominal voltage and phase
count. :class:`SmartCharging` puts it behind the central system's commands.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# OCPP 1.6 §7 ChargingProfileKindType, ChargingProfilePurposeType, ChargingProfileStatus,
# ChargingRateUnitType and RecurrencyKindType, as the ocpp package has them.
from ocpp.v16.enums import ChargingProfileKindType as Kind
from ocpp.v16.enums import ChargingProfilePurposeType as Purpose
from ocpp.v16.enums import ChargingProfileStatus as Status
from ocpp.v16.enums import ChargingRateUnitType as Unit
from ocpp.v16.enums import RecurrencyKind as Recurrency

from .clock import iso
from .model import Connector, SessionState
from .services import Services

__all__ = [
    "ChargingProfile",
    "ProfileStore",
    "Quirk",
    "SchedulePeriod",
    "SmartCharging",
    "parse_time",
]

INF = math.inf
DAY = 86400.0
WEEK = 7 * DAY


def parse_time(text: str) -> float:
    """An OCPP dateTime as POSIX seconds (naive times are taken as UTC)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """One chargingSchedulePeriod (``start`` in simulated seconds)."""

    start: float
    limit: float
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A validated, installed charging profile."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    unit: Unit
    periods: tuple[SchedulePeriod, ...]
    recurrency: Recurrency | None = None
    transaction_id: int | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    start_schedule: float | None = None
    duration: float | None = None
    installed_at: float = 0.0
    min_rate: float | None = None  # minChargingRate, in the schedule's unit
    cycle: float = DAY  # a Recurring profile's period in simulated seconds

    @classmethod
    def from_ocpp(
        cls,
        connector_id: int,
        data: dict[str, Any],
        now: float,
        to_sim: Callable[[float], float] | None = None,
        scale: float = 1.0,
    ) -> ChargingProfile:
        """Build from a csChargingProfiles object (already schema-valid); ValueError if unusable.

        ``to_sim`` maps the absolute times in it (validFrom, validTo, startSchedule: wall-clock
        times) onto the simulated clock; by default they are taken as they are. ``scale`` is
        simulated seconds per schedule second: a real charger counts startPeriod, duration
        and the recurrence in real seconds, so a charger simulated at 600x stretches them
        600 times (a central system's 30-minute lease is 30 real minutes, whatever the
        speed).
        """

        def when(text: str) -> float:
            moment = parse_time(text)
            return moment if to_sim is None else to_sim(moment)

        schedule = data["chargingSchedule"]
        periods = tuple(
            sorted(
                (
                    SchedulePeriod(
                        int(period["startPeriod"]) * scale,
                        float(period["limit"]),
                        period.get("numberPhases"),
                    )
                    for period in schedule["chargingSchedulePeriod"]
                ),
                key=lambda period: period.start,
            )
        )
        if not periods:
            raise ValueError("no chargingSchedulePeriod")
        starts = [period.start for period in periods]
        if len(set(starts)) != len(starts) or starts[0] < 0:
            raise ValueError("startPeriod values must be distinct and non-negative")
        if any(period.limit < 0 for period in periods):
            raise ValueError("negative limit")
        kind = Kind(data["chargingProfileKind"])
        recurrency = Recurrency(data["recurrencyKind"]) if "recurrencyKind" in data else None
        if kind is Kind.recurring and recurrency is None:
            raise ValueError("Recurring profile without recurrencyKind")
        duration = schedule.get("duration")
        if duration is not None and duration <= 0:
            raise ValueError("non-positive duration")
        return cls(
            profile_id=int(data["chargingProfileId"]),
            connector_id=connector_id,
            stack_level=int(data["stackLevel"]),
            purpose=Purpose(data["chargingProfilePurpose"]),
            kind=kind,
            unit=Unit(schedule["chargingRateUnit"]),
            periods=periods,
            recurrency=recurrency,
            transaction_id=data.get("transactionId"),
            valid_from=when(data["validFrom"]) if "validFrom" in data else None,
            valid_to=when(data["validTo"]) if "validTo" in data else None,
            start_schedule=when(schedule["startSchedule"]) if "startSchedule" in schedule else None,
            duration=float(duration) * scale if duration is not None else None,
            installed_at=now,
            min_rate=schedule.get("minChargingRate"),
            cycle=(DAY if recurrency is not Recurrency.weekly else WEEK) * scale,
        )

    def period_at(self, t: float, tx_start: float | None) -> tuple[SchedulePeriod | None, float]:
        """The period in force at ``t`` (None if none) and the next time that may change."""
        next_change = INF
        if self.valid_from is not None and t < self.valid_from:
            return None, self.valid_from
        if self.valid_to is not None:
            if t >= self.valid_to:
                return None, INF
            next_change = self.valid_to
        if self.kind is Kind.relative:
            start = tx_start if tx_start is not None else t
        elif self.kind is Kind.absolute:
            start = self._anchor()
        else:
            base = self._anchor()
            cycle = self.cycle
            start = base + math.floor((t - base) / cycle) * cycle
            next_change = min(next_change, start + cycle)
        offset = t - start
        if offset < 0:
            return None, min(next_change, start)
        if self.duration is not None:
            if offset >= self.duration:
                return None, next_change
            next_change = min(next_change, start + self.duration)
        starts = [period.start for period in self.periods]
        index = bisect_right(starts, offset) - 1
        if index < 0:
            return None, min(next_change, start + starts[0])
        if index + 1 < len(starts):
            next_change = min(next_change, start + starts[index + 1])
        return self.periods[index], next_change

    def _anchor(self) -> float:
        if self.start_schedule is not None:
            return self.start_schedule
        if self.valid_from is not None:
            return self.valid_from
        return self.installed_at


@dataclass(frozen=True, slots=True)
class Electrical:
    """What the hardware can do, to convert amps to watts and bound the result."""

    voltage: float = 230.0
    phases: int = 3
    max_power_w: float = 22080.0  # per connector


class Quirk(StrEnum):
    """Ways real chargers get smart charging wrong (docs/load-balancing.md, "Quirks")."""

    IGNORES_TX_DEFAULT = "ignores_tx_default"  # TxDefaultProfile accepted, never applied
    OVERDRAWS = "overdraws"  # limits accepted, the car draws what it wants
    AMPS_ONLY = "amps_only"  # W profiles rejected
    ONE_PERIOD = "one_period"  # one chargingSchedulePeriod at most
    REJECTS_CONNECTOR0 = "rejects_connector0"  # TxDefaultProfile on connectorId 0 rejected
    REJECTS_TX_DEFAULT = "rejects_tx_default"  # every TxDefaultProfile rejected
    REJECTS_TX_PROFILE = "rejects_tx_profile"  # every TxProfile rejected
    STACK_LEVEL_ZERO_ONLY = "stack_level_zero_only"  # stackLevel > 0 rejected (Wallbox)


class ProfileStore:
    """The profiles installed on one charger, keyed by chargingProfileId.

    ``shares`` caps each connector at its part of a ChargePointMaxProfile, which limits the
    charger as a whole (OCPP 1.6 §3.13.1): the metering sets it whenever limits change.
    """

    __slots__ = (
        "connectors",
        "electrical",
        "max_periods",
        "max_profiles",
        "max_stack",
        "profiles",
        "quirks",
        "shares",
    )

    def __init__(
        self,
        connectors: int,
        electrical: Electrical | None = None,
        *,
        max_stack: int = 10,
        max_periods: int = 24,
        max_profiles: int = 20,
        quirks: frozenset[Quirk] = frozenset(),
    ) -> None:
        self.connectors = connectors
        self.electrical = electrical or Electrical()
        self.max_stack = max_stack
        self.max_periods = max(1, max_periods) if Quirk.ONE_PERIOD not in quirks else 1
        self.max_profiles = max_profiles
        self.quirks = quirks
        self.profiles: dict[int, ChargingProfile] = {}
        self.shares: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.profiles)

    def install(
        self,
        connector_id: int,
        data: dict[str, Any],
        now: float,
        active_transaction: int | bool | None = None,
        *,
        to_sim: Callable[[float], float] | None = None,
        scale: float = 1.0,
    ) -> Status:
        """Apply a SetChargingProfile.req.

        ``active_transaction`` is the transaction id running on the connector, ``True``
        for one whose id is not known yet, or None when the connector has none. ``to_sim``
        maps the profile's absolute times onto the simulated clock.
        """
        if not 0 <= connector_id <= self.connectors:
            return Status.rejected
        try:
            profile = ChargingProfile.from_ocpp(connector_id, data, now, to_sim, scale)
        except (ValueError, KeyError, TypeError):
            return Status.rejected
        if not 0 <= profile.stack_level <= self.max_stack:
            return Status.rejected
        if len(profile.periods) > self.max_periods:
            return Status.rejected
        if Quirk.AMPS_ONLY in self.quirks and profile.unit is Unit.watts:
            return Status.rejected
        if profile.purpose is Purpose.charge_point_max_profile and connector_id != 0:
            return Status.rejected
        if profile.purpose is Purpose.tx_profile and Quirk.REJECTS_TX_PROFILE in self.quirks:
            return Status.rejected
        if profile.stack_level > 0 and Quirk.STACK_LEVEL_ZERO_ONLY in self.quirks:
            return Status.rejected
        if profile.purpose is Purpose.tx_default_profile and (
            Quirk.REJECTS_TX_DEFAULT in self.quirks
            or (Quirk.REJECTS_CONNECTOR0 in self.quirks and connector_id == 0)
        ):
            return Status.rejected
        if profile.purpose is Purpose.tx_profile:
            if connector_id == 0 or active_transaction is None or active_transaction is False:
                return Status.rejected
            if (
                profile.transaction_id is not None
                and not isinstance(active_transaction, bool)
                and profile.transaction_id != active_transaction
            ):
                return Status.rejected
        # Same id, or same connector + purpose + stack level: the new one replaces the old.
        replaced = [
            installed_id
            for installed_id, old in self.profiles.items()
            if installed_id == profile.profile_id
            or (
                old.connector_id == connector_id
                and old.purpose is profile.purpose
                and old.stack_level == profile.stack_level
            )
        ]
        if len(self.profiles) - len(replaced) >= self.max_profiles:
            return Status.rejected
        for installed_id in replaced:
            del self.profiles[installed_id]
        self.profiles[profile.profile_id] = profile
        return Status.accepted

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Apply a ClearChargingProfile.req; True if anything was removed.

        An id alone identifies a profile; without one, the other fields filter.
        """
        if profile_id is not None:
            doomed = [profile_id] if profile_id in self.profiles else []
        else:
            doomed = [
                installed_id
                for installed_id, installed in self.profiles.items()
                if (connector_id is None or installed.connector_id == connector_id)
                and (purpose is None or installed.purpose.value == purpose)
                and (stack_level is None or installed.stack_level == stack_level)
            ]
        for installed_id in doomed:
            del self.profiles[installed_id]
        return bool(doomed)

    def end_transaction(self, connector_id: int) -> None:
        """Drop the TxProfiles of a connector whose transaction ended."""
        for installed_id in [
            installed_id
            for installed_id, installed in self.profiles.items()
            if installed.connector_id == connector_id and installed.purpose is Purpose.tx_profile
        ]:
            del self.profiles[installed_id]

    def to_watts(self, period: SchedulePeriod, unit: Unit, phases: int | None = None) -> float:
        """A period's limit in watts; amps count on the car's phases (``phases``) when it is
        known, at most the period's numberPhases and the charger's."""
        if unit is Unit.watts:
            return period.limit
        wired = min(phases or self.electrical.phases, self.electrical.phases)
        return period.limit * self.electrical.voltage * min(period.phases or wired, wired)

    def _best(
        self,
        candidates: list[ChargingProfile],
        t: float,
        tx_start: float | None,
        phases: int | None = None,
    ) -> tuple[float | None, float, ChargingProfile | None]:
        """Highest stack level in force among ``candidates``: limit in W, next change, and
        the profile."""
        next_change = INF
        best: tuple[int, float, ChargingProfile] | None = None
        for profile in candidates:
            period, change = profile.period_at(t, tx_start)
            next_change = min(next_change, change)
            if period is not None and (best is None or profile.stack_level > best[0]):
                best = (profile.stack_level, self.to_watts(period, profile.unit, phases), profile)
        if best is None:
            return None, next_change, None
        return best[1], next_change, best[2]

    def min_rate_w(
        self, connector_id: int, t: float, tx_start: float | None, phases: int | None = None
    ) -> float:
        """The minChargingRate (W) of the Tx or TxDefault profile in force, or 0."""
        for group in self._tx_groups(connector_id, in_transaction=tx_start is not None):
            value, _, profile = self._best(group, t, tx_start, phases)
            if value is not None and profile is not None:
                if profile.min_rate is None:
                    return 0.0
                return self.to_watts(SchedulePeriod(0, profile.min_rate), profile.unit, phases)
        return 0.0

    def _tx_groups(self, connector_id: int, *, in_transaction: bool) -> list[list[ChargingProfile]]:
        """TxProfile (in a transaction), then TxDefault on the connector, then on 0."""
        groups = []
        mine = [p for p in self.profiles.values() if p.connector_id == connector_id]
        if in_transaction:
            groups.append([p for p in mine if p.purpose is Purpose.tx_profile])
        if Quirk.IGNORES_TX_DEFAULT not in self.quirks:
            groups.append([p for p in mine if p.purpose is Purpose.tx_default_profile])
            groups.append(
                [
                    p
                    for p in self.profiles.values()
                    if p.connector_id == 0 and p.purpose is Purpose.tx_default_profile
                ]
            )
        return groups

    def limit_w(
        self,
        connector_id: int,
        t: float,
        tx_start: float | None,
        in_transaction: bool,
        phases: int | None = None,
    ) -> tuple[float, float]:
        """The power limit of a connector at ``t`` and the next time it may change.

        Connector 0 gives the charger-wide limit (ChargePointMaxProfile). ``phases``: the
        car's, when a car is charging (amps are per phase).
        """
        electrical = self.electrical
        if connector_id == 0:
            hardware = electrical.max_power_w * self.connectors
        else:
            wired = min(phases or electrical.phases, electrical.phases)
            hardware = electrical.max_power_w * wired / electrical.phases
            hardware = min(hardware, self.shares.get(connector_id, INF))
        if not self.profiles:
            return hardware, INF
        by_purpose: dict[tuple[int, Purpose], list[ChargingProfile]] = {}
        for installed in self.profiles.values():
            by_purpose.setdefault((installed.connector_id, installed.purpose), []).append(installed)
        charger_max, next_change, _ = self._best(
            by_purpose.get((0, Purpose.charge_point_max_profile), []), t, tx_start
        )
        limit = hardware if charger_max is None else min(hardware, charger_max)
        if connector_id == 0:
            return limit, next_change
        tx_limit: float | None = None
        for group in self._tx_groups(connector_id, in_transaction=in_transaction):
            value, change, _ = self._best(group, t, tx_start, phases)
            next_change = min(next_change, change)
            if tx_limit is None and value is not None:
                tx_limit = value
        if tx_limit is not None:
            limit = min(limit, tx_limit)
        return limit, next_change

    def composite(
        self,
        connector_id: int,
        start: float,
        duration: int,
        unit: Unit,
        tx_start: float | None,
        in_transaction: bool,
    ) -> list[tuple[int, float]]:
        """GetCompositeSchedule: ``(startPeriod, limit)`` pairs over ``duration`` seconds."""
        return composite_schedule(
            lambda t: self.limit_w(connector_id, t, tx_start, in_transaction),
            start,
            duration,
            self.watts_to_unit_fn(unit),
        )

    def watts_to_unit_fn(self, unit: Unit) -> Callable[[float], float]:
        """Conversion of watts to the requested unit, rounded to the schema's 0.1 step."""
        if unit is Unit.watts:
            return lambda w: round(w, 1)
        per_amp = self.electrical.voltage * self.electrical.phases
        return lambda w: round(w / per_amp, 1)


def composite_schedule(
    limit_at: Callable[[float], tuple[float, float]],
    start: float,
    duration: int,
    convert: Callable[[float], float],
) -> list[tuple[int, float]]:
    """Walk the change points of ``limit_at`` over ``[start, start + duration)``."""
    end = start + duration
    periods: list[tuple[int, float]] = []
    t = start
    for _ in range(10_000):
        if t >= end:
            break
        watts, next_change = limit_at(t)
        value = convert(watts)
        offset = round(t - start)
        if periods and periods[-1][0] == offset:
            periods[-1] = (offset, value)
        elif not periods or periods[-1][1] != value:
            periods.append((offset, value))
        if len(periods) >= 2 and periods[-1][1] == periods[-2][1]:
            periods.pop()
        t = max(next_change, t + 1e-6)
    return periods


# ---------------------------------------------------------------- the charger's commands


class SmartCharging:
    """SetChargingProfile, ClearChargingProfile and GetCompositeSchedule on one charger."""

    def __init__(
        self,
        services: Services,
        connectors: list[Connector],
        profiles: ProfileStore,
        *,
        transaction_on: Callable[[int], int | bool | None],
        settle_energy: Callable[[float], None],
        apply_limits: Callable[[float], None],
    ) -> None:
        """
        Args:
            transaction_on: the running transaction's id on a connector (True: not known
                yet, None: no transaction), which a TxProfile must name.
            settle_energy: bring every session's energy up to now, before limits change.
            apply_limits: the limits changed: adjust the sessions' power and statuses.
        """
        self._services = services
        self._connectors = connectors
        self._profiles = profiles
        self._transaction_on = transaction_on
        self._settle_energy = settle_energy
        self._apply_limits = apply_limits

    def set_charging_profile(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """SetChargingProfile."""
        connector_id = payload["connectorId"]
        self._settle_energy(now)
        status = self._profiles.install(
            connector_id,
            payload["csChargingProfiles"],
            self._services.clock.sim(now),
            self._transaction_on(connector_id),
            to_sim=self._services.clock.sim_at_wall,
            scale=self._services.clock.speed,
        )
        if status is Status.accepted:
            self._services.after_reply(self._apply_limits)
        return {"status": status.value}

    def clear_charging_profile(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ClearChargingProfile: by id, or by connector, purpose and stack level."""
        self._settle_energy(now)
        removed = self._profiles.clear(
            payload.get("id"),
            payload.get("connectorId"),
            payload.get("chargingProfilePurpose"),
            payload.get("stackLevel"),
        )
        if removed:
            self._services.after_reply(self._apply_limits)
        return {"status": "Accepted" if removed else "Unknown"}

    def get_composite_schedule(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """GetCompositeSchedule, starting now."""
        connector_id = payload["connectorId"]
        if not 0 <= connector_id < len(self._connectors):
            return {"status": "Rejected"}
        unit = Unit(payload.get("chargingRateUnit", "W"))
        start = self._services.clock.sim(now)
        session = self._connectors[connector_id].session if connector_id else None
        running = session is not None and session.state is SessionState.CHARGING
        # The duration and the offsets are real seconds; the profiles run on the simulated
        # clock (see ChargingProfile.from_ocpp's scale).
        speed = self._services.clock.speed
        periods = self._profiles.composite(
            connector_id,
            start,
            math.ceil(payload["duration"] * speed),
            unit,
            session.started_at if session is not None and running else None,
            running,
        )
        periods = [(round(offset / speed), limit) for offset, limit in periods]
        stamp = iso(start)
        return {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": stamp,
            "chargingSchedule": {
                "duration": payload["duration"],
                "startSchedule": stamp,
                "chargingRateUnit": unit.value,
                "chargingSchedulePeriod": [
                    {"startPeriod": offset, "limit": limit} for offset, limit in periods
                ],
            },
        }
