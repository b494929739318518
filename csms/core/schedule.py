"""Charging profiles as typed values and the composite schedule a charger should apply.

OCPP 1.6 §3.13 (smart charging). Pure: every instant is passed in as a timezone-aware
datetime, and every schedule offset is computed from the schedule's own start
(`startSchedule`, the transaction start, or the recurrence anchor), never from the time of
day, so results do not depend on when they are computed.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# The schema's step for limits (OCPP 1.6 JSON schema: multipleOf 0.1).
STEP = 0.1
_EPS = 1e-9


class Purpose(StrEnum):
    """chargingProfilePurpose."""

    CHARGE_POINT_MAX = "ChargePointMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class Kind(StrEnum):
    """chargingProfileKind."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class Unit(StrEnum):
    """chargingRateUnit."""

    AMPS = "A"
    WATTS = "W"


@dataclass(frozen=True)
class Period:
    """One chargingSchedulePeriod: from `start` seconds into the schedule."""

    start: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class Profile:
    """A charging profile installed on a connector (0: the whole charger)."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    unit: Unit
    periods: tuple[Period, ...]
    recurrency_weekly: bool = False
    transaction_id: int | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    start_schedule: datetime | None = None
    duration: int | None = None
    min_rate: float | None = None
    # When csms saw it accepted: the anchor of an Absolute schedule without startSchedule.
    installed_at: datetime | None = None


@dataclass(frozen=True)
class Electrical:
    """How a charger converts amps to watts: W = A x voltage x phases (per phase amps)."""

    voltage: float = 230.0
    phases: int = 3


class ProfileError(ValueError):
    """A csChargingProfiles object that cannot be a profile (pure-core value error)."""


def profile_from_ocpp(
    connector_id: int, data: dict[str, Any], *, installed_at: datetime | None = None
) -> Profile:
    """A schema-valid csChargingProfiles object as a Profile.

    Raises:
        ProfileError: what the schema cannot say (duplicate startPeriod, first period not
            at 0, Recurring without recurrencyKind, a TxProfile on connector 0).
    """
    schedule = data["chargingSchedule"]
    periods = tuple(
        sorted(
            (
                Period(int(item["startPeriod"]), float(item["limit"]), item.get("numberPhases"))
                for item in schedule["chargingSchedulePeriod"]
            ),
            key=lambda period: period.start,
        )
    )
    starts = [period.start for period in periods]
    if not periods or len(set(starts)) != len(starts):
        raise ProfileError("startPeriod values must be distinct")
    if starts[0] != 0:
        # OCPP 1.6 §7.8: "The first ChargingSchedulePeriod ... StartPeriod always be 0".
        raise ProfileError("the first period must start at 0")
    kind = Kind(data["chargingProfileKind"])
    if kind is Kind.RECURRING and "recurrencyKind" not in data:
        raise ProfileError("a Recurring profile needs recurrencyKind")
    purpose = Purpose(data["chargingProfilePurpose"])
    if purpose is Purpose.TX and connector_id == 0:
        raise ProfileError("a TxProfile needs a connector other than 0")
    if purpose is Purpose.CHARGE_POINT_MAX and connector_id != 0:
        raise ProfileError("a ChargePointMaxProfile goes on connector 0")

    def when(key: str, source: dict[str, Any]) -> datetime | None:
        text = source.get(key)
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(str(text))
        except ValueError:
            raise ProfileError(f"{key} is not a date-time") from None
        # OCPP 1.6 §3.14: a time without an offset is taken as UTC.
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    return Profile(
        profile_id=int(data["chargingProfileId"]),
        connector_id=connector_id,
        stack_level=int(data["stackLevel"]),
        purpose=purpose,
        kind=kind,
        unit=Unit(schedule["chargingRateUnit"]),
        periods=periods,
        recurrency_weekly=data.get("recurrencyKind") == "Weekly",
        transaction_id=data.get("transactionId"),
        valid_from=when("validFrom", data),
        valid_to=when("validTo", data),
        start_schedule=when("startSchedule", schedule),
        duration=schedule.get("duration"),
        min_rate=schedule.get("minChargingRate"),
        installed_at=installed_at,
    )


@dataclass(frozen=True)
class InForce:
    """The period a profile applies at an instant, and when that may next change."""

    period: Period | None
    next_change: datetime | None


def schedule_start(profile: Profile, at: datetime, tx_start: datetime | None) -> datetime:
    """Where offset 0 of the profile's schedule lies for the instant `at`.

    OCPP 1.6 §7.13: Absolute starts at startSchedule; Relative at the start of the
    transaction (or now, without one); Recurring repeats from startSchedule every day or
    week. The recurrence is counted in whole cycles from startSchedule, so a Daily profile
    anchored at 07:00 UTC keeps its 07:00 boundary whatever `at` is.
    """
    anchor = profile.start_schedule or profile.valid_from or profile.installed_at or at
    if profile.kind is Kind.RELATIVE:
        return tx_start or at
    if profile.kind is Kind.ABSOLUTE:
        return anchor
    cycle = WEEK if profile.recurrency_weekly else DAY
    return anchor + cycle * math.floor((at - anchor) / cycle)


def in_force(profile: Profile, at: datetime, tx_start: datetime | None) -> InForce:
    """The profile's period at `at` (None: not in force) and the next instant it may change."""
    if profile.valid_from is not None and at < profile.valid_from:
        return InForce(None, profile.valid_from)
    if profile.valid_to is not None and at >= profile.valid_to:
        return InForce(None, None)
    changes: list[datetime] = [profile.valid_to] if profile.valid_to else []
    start = schedule_start(profile, at, tx_start)
    if profile.kind is Kind.RECURRING:
        changes.append(start + (WEEK if profile.recurrency_weekly else DAY))
    offset = (at - start).total_seconds()
    if offset < 0:
        return InForce(None, _earliest([*changes, start]))
    if profile.duration is not None:
        if offset >= profile.duration:
            return InForce(None, _earliest(changes))
        changes.append(start + timedelta(seconds=profile.duration))
    starts = [period.start for period in profile.periods]
    index = bisect_right(starts, offset + _EPS) - 1
    if index + 1 < len(starts):
        changes.append(start + timedelta(seconds=starts[index + 1]))
    period = profile.periods[index] if index >= 0 else None
    return InForce(period, _earliest(changes))


def _earliest(moments: Sequence[datetime | None]) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def to_watts(limit: float, unit: Unit, phases: int | None, electrical: Electrical) -> float:
    """A limit in watts; amps are per phase, on `numberPhases` (default: the charger's)."""
    if unit is Unit.WATTS:
        return limit
    return limit * electrical.voltage * min(phases or electrical.phases, electrical.phases)


def from_watts(watts: float, unit: Unit, electrical: Electrical) -> float:
    """Watts in `unit`, rounded down to the schema's 0.1 step (never up: never over)."""
    value = watts if unit is Unit.WATTS else watts / (electrical.voltage * electrical.phases)
    return math.floor(value / STEP + _EPS) * STEP if value > 0 else 0.0


@dataclass(frozen=True)
class TxContext:
    """The transaction on the connector, if any: a TxProfile applies only to it."""

    transaction_id: int | None = None
    started_at: datetime | None = None


def _highest(
    profiles: Sequence[Profile], at: datetime, tx_start: datetime | None, electrical: Electrical
) -> tuple[float | None, datetime | None]:
    """OCPP 1.6 §3.13.2: of one purpose, the highest stackLevel in force wins."""
    best: tuple[int, float] | None = None
    changes: list[datetime | None] = []
    for profile in profiles:
        state = in_force(profile, at, tx_start)
        changes.append(state.next_change)
        if state.period is not None and (best is None or profile.stack_level > best[0]):
            watts = to_watts(state.period.limit, profile.unit, state.period.phases, electrical)
            best = (profile.stack_level, watts)
    return (best[1] if best else None), _earliest(changes)


def limit_at(
    profiles: Sequence[Profile],
    *,
    connector_id: int,
    at: datetime,
    tx: TxContext,
    electrical: Electrical,
) -> tuple[float | None, datetime | None]:
    """The limit in watts on a connector at `at` (None: no profile limits it) and when it
    may change next.

    OCPP 1.6 §3.13.1/§3.13.2: the charger-wide ChargePointMaxProfile caps everything; under
    it a TxProfile of the running transaction overrides the connector's TxDefaultProfile,
    which overrides one installed on connector 0. Connector 0 reports the charger-wide cap.
    """
    cp_max = [p for p in profiles if p.purpose is Purpose.CHARGE_POINT_MAX]
    limit, next_change = _highest(cp_max, at, tx.started_at, electrical)
    if connector_id == 0:
        return limit, next_change
    changes = [next_change]
    groups: list[list[Profile]] = []
    if tx.started_at is not None:
        groups.append(
            [
                p
                for p in profiles
                if p.purpose is Purpose.TX
                and p.connector_id == connector_id
                and p.transaction_id in (None, tx.transaction_id)
            ]
        )
    defaults = [p for p in profiles if p.purpose is Purpose.TX_DEFAULT]
    groups.append([p for p in defaults if p.connector_id == connector_id])
    groups.append([p for p in defaults if p.connector_id == 0])
    for group in groups:
        value, change = _highest(group, at, tx.started_at, electrical)
        changes.append(change)
        if value is not None:
            limit = value if limit is None else min(limit, value)
            break
    return limit, _earliest(changes)


@dataclass(frozen=True)
class Composite:
    """A composite schedule: periods from `start`, in `unit` (limit None: unlimited)."""

    start: datetime
    duration: int
    unit: Unit
    periods: tuple[tuple[int, float | None], ...]


def composite_schedule(
    profiles: Sequence[Profile],
    *,
    connector_id: int,
    start: datetime,
    duration: int,
    unit: Unit,
    tx: TxContext,
    electrical: Electrical,
    hardware_w: float | None = None,
) -> Composite:
    """GetCompositeSchedule as csms computes it (OCPP 1.6 §5.7, §3.13.3).

    Walks the instants where any profile may change over `[start, start + duration)` and
    keeps a period wherever the combined limit changes. `hardware_w` caps the result (the
    charger's own maximum) when given.
    """
    end = start + timedelta(seconds=duration)
    periods: list[tuple[int, float | None]] = []
    at = start
    while at < end:
        watts, next_change = limit_at(
            profiles, connector_id=connector_id, at=at, tx=tx, electrical=electrical
        )
        if hardware_w is not None:
            watts = hardware_w if watts is None else min(watts, hardware_w)
        value = None if watts is None else from_watts(watts, unit, electrical)
        offset = math.floor((at - start).total_seconds())
        if not periods or periods[-1][1] != value:
            periods.append((offset, value))
        if next_change is None or next_change <= at:
            break
        at = next_change
    return Composite(start=start, duration=duration, unit=unit, periods=tuple(periods))
