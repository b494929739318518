"""The balancer's decisions: what to send after an allocation pass, the profiles it sends,
the safe share, and the fallback ladder (docs/load-balancing.md).

Pure: the allocation (`csms.core.allocator`), what each charger holds and the time come in;
the changes to make come out. Limits are deci-amps per phase, like the allocator's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from csms.core.allocator import ConnectorKey, Grant
from csms.core.clock import format_utc

# The balancer's own chargingProfileIds and stack levels, so that operators' profiles never
# silently replace them (OCPP 1.6 §3.13.2 "Replacement": same id, or same purpose and
# stackLevel on a connector). 9000 + connectorId: the TxProfile; 9100: the safe default.
PROFILE_ID_BASE = 9000
SAFE_DEFAULT_ID = 9100
RESERVED_IDS = range(PROFILE_ID_BASE, 9200)
TX_STACK_LEVEL = 1
SAFE_STACK_LEVEL = 0
# How far back a schedule starts: OCPP 1.6 allows a startSchedule in the past, and a charger
# whose clock is a little ahead must still find period 1 in force (evcc does the same).
BACKDATE = timedelta(seconds=60)
VOLTAGE = 230.0


class Strategy(StrEnum):
    """The rungs of the fallback ladder, learned per charger (docs/load-balancing.md)."""

    TX_PROFILE = "tx_profile"
    TX_PROFILE_SL0 = "tx_profile_sl0"
    TX_DEFAULT_CONNECTOR = "tx_default_conn"
    CP_MAX = "cp_max"
    UNCONTROLLABLE = "uncontrollable"


LADDER = list(Strategy)


def next_rung(strategy: Strategy, *, connectors: int) -> Strategy:
    """The next rung down after a Rejected, NotSupported or CALLERROR answer.

    ChargePointMaxProfile limits the whole charger, so it is a rung only for chargers with
    one connector.
    """
    index = LADDER.index(strategy) + 1
    following = LADDER[index] if index < len(LADDER) else Strategy.UNCONTROLLABLE
    if following is Strategy.CP_MAX and connectors > 1:
        return Strategy.UNCONTROLLABLE
    return following


@dataclass(frozen=True)
class Caps:
    """What a charger reported it can take (GetConfiguration, OCPP 1.6 §9.4)."""

    max_stack_level: int = 10
    max_periods: int = 24
    amps: bool = True  # ChargingScheduleAllowedChargingRateUnit includes Current
    watts: bool = True  # ... includes Power
    integer_amps: bool = False

    @classmethod
    def from_configuration(cls, values: Mapping[str, str | None]) -> Caps:
        """From the charger's configuration keys; missing keys keep the defaults."""

        def number(key: str, default: int) -> int:
            text = values.get(key)
            return int(text) if text is not None and text.strip().isdigit() else default

        units = values.get("ChargingScheduleAllowedChargingRateUnit")
        allowed = {u.strip() for u in units.split(",")} if units else {"Current", "Power"}
        return cls(
            max_stack_level=number("ChargeProfileMaxStackLevel", 10),
            max_periods=number("ChargingScheduleMaxPeriods", 24),
            amps="Current" in allowed,
            watts="Power" in allowed,
        )


class CapsProblem(ValueError):
    """A profile the charger said it cannot take; the message names the limit."""


def check_against_caps(profile: Mapping[str, Any], caps: Caps) -> None:
    """Raise CapsProblem naming the configuration key a profile breaks (OCPP 1.6 §9.4)."""
    level = profile["stackLevel"]
    if level > caps.max_stack_level:
        raise CapsProblem(
            f"stackLevel {level} is above ChargeProfileMaxStackLevel {caps.max_stack_level}"
        )
    schedule = profile["chargingSchedule"]
    count = len(schedule["chargingSchedulePeriod"])
    if count > caps.max_periods:
        raise CapsProblem(
            f"{count} periods is more than ChargingScheduleMaxPeriods {caps.max_periods}"
        )
    unit = schedule["chargingRateUnit"]
    if (unit == "A" and not caps.amps) or (unit == "W" and not caps.watts):
        raise CapsProblem(
            f"chargingRateUnit {unit} is not in ChargingScheduleAllowedChargingRateUnit"
        )


@dataclass(frozen=True)
class BalancerPolicy:
    """How eagerly the balancer changes limits (docs/load-balancing.md, "Sending")."""

    increase_min_da: int = 10  # an increase is worth a profile from 1 A up
    increase_hold_s: float = 30.0  # cars take 26-30 s to ramp: no increase sooner
    resume_hold_s: float = 60.0  # a paused session resumes after headroom held this long
    lease_s: int = 1800  # a TxProfile falls back to the safe share after this
    renew_before_s: int = 600  # renew a lease with this much left


@dataclass(frozen=True)
class Applied:
    """The limit a connector holds, as its charger confirmed it."""

    limit_da: int
    changed_at: datetime
    lease_until: datetime | None = None


class ChangeKind(StrEnum):
    DECREASE = "decrease"
    INCREASE = "increase"
    RENEW = "renew"


@dataclass(frozen=True)
class Change:
    """A limit to send to one connector."""

    key: ConnectorKey
    limit_da: int
    previous_da: int | None
    kind: ChangeKind
    grant: Grant


@dataclass(frozen=True)
class Plan:
    """What a pass sends: decreases first (awaited), then increases and renewals."""

    decreases: tuple[Change, ...]
    increases: tuple[Change, ...]
    held: tuple[ConnectorKey, ...]  # wanted more, not yet (hysteresis)


def plan(
    grants: Mapping[ConnectorKey, Grant],
    applied: Mapping[ConnectorKey, Applied],
    *,
    now: datetime,
    policy: BalancerPolicy,
    controlled: Sequence[ConnectorKey],
) -> Plan:
    """The changes an allocation asks for, with hysteresis on increases.

    Decreases go at once. An increase goes when it is at least `increase_min_da` and the
    connector's limit has not changed for `increase_hold_s` (`resume_hold_s` from 0). A
    limit equal to the one applied is never re-sent, except to renew its lease.
    """
    decreases: list[Change] = []
    increases: list[Change] = []
    held: list[ConnectorKey] = []
    for key in sorted(controlled):
        grant = grants[key]
        target, current = grant.limit_da, applied.get(key)
        if current is None:
            kind = ChangeKind.DECREASE if target == 0 else ChangeKind.INCREASE
            (decreases if kind is ChangeKind.DECREASE else increases).append(
                Change(key, target, None, kind, grant)
            )
            continue
        if target < current.limit_da:
            decreases.append(Change(key, target, current.limit_da, ChangeKind.DECREASE, grant))
        elif target > current.limit_da:
            hold = policy.resume_hold_s if current.limit_da == 0 else policy.increase_hold_s
            waited = (now - current.changed_at).total_seconds()
            if target - current.limit_da >= policy.increase_min_da and waited >= hold:
                increases.append(Change(key, target, current.limit_da, ChangeKind.INCREASE, grant))
            else:
                held.append(key)
                if _lease_due(current, now, policy):
                    increases.append(
                        Change(key, current.limit_da, current.limit_da, ChangeKind.RENEW, grant)
                    )
        elif _lease_due(current, now, policy):
            increases.append(Change(key, target, target, ChangeKind.RENEW, grant))
    return Plan(tuple(decreases), tuple(increases), tuple(held))


def _lease_due(current: Applied, now: datetime, policy: BalancerPolicy) -> bool:
    if current.lease_until is None:
        return False
    return (current.lease_until - now).total_seconds() <= policy.renew_before_s


def safe_share_da(*, headroom_da: int, connectors: int, min_da: int, max_da: int) -> int:
    """The share every member connector may draw with nobody watching: the node's headroom
    split evenly, capped at the member's maximum; below its minimum that is 0 (new sessions
    pause by default, docs/load-balancing.md "The safe share")."""
    if connectors <= 0:
        return min(max_da, max(headroom_da, 0))
    share = max(headroom_da, 0) // connectors
    share = min(share, max_da)
    return share if share >= min_da else 0


def _limit_value(limit_da: int, *, caps: Caps, phases: int) -> tuple[str, float]:
    """(unit, limit) for the charger: amps when it takes them, else whole watts, floored."""
    if caps.amps:
        step = 10 if caps.integer_amps else 1
        return "A", (limit_da - limit_da % step) / 10
    return "W", float(math.floor(limit_da / 10 * VOLTAGE * phases))


def tx_profile(
    *,
    connector_id: int,
    transaction_id: int | None,
    limit_da: int,
    safe_da: int,
    now: datetime,
    caps: Caps,
    policy: BalancerPolicy,
    strategy: Strategy,
    phases: int = 3,
) -> tuple[dict[str, Any], datetime]:
    """The SetChargingProfile.req the balancer sends for a limit, and its lease's end.

    A TxProfile carries two periods: the limit now, and the safe share from the lease's end,
    so a session decays to its safe share if csms goes away (docs/load-balancing.md,
    "Leases"). A charger that takes one period only gets `validTo` at the lease's end
    instead: after it the safe TxDefaultProfile governs (OCPP 1.6 §3.13.2).
    """
    start = now - BACKDATE
    lease_end = now + timedelta(seconds=policy.lease_s)
    unit, value = _limit_value(limit_da, caps=caps, phases=phases)
    _, safe = _limit_value(safe_da, caps=caps, phases=phases)
    periods: list[dict[str, Any]] = [{"startPeriod": 0, "limit": value}]
    purpose, level, target_connector, profile_id = _placement(
        strategy, connector_id=connector_id, caps=caps
    )
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "startSchedule": format_utc(start),
            "chargingSchedulePeriod": periods,
        },
    }
    if purpose == "TxProfile" and transaction_id is not None:
        profile["transactionId"] = transaction_id
    if caps.max_periods >= 2 and safe != value:
        periods.append({"startPeriod": int((lease_end - start).total_seconds()), "limit": safe})
    elif caps.max_periods < 2:
        profile["validTo"] = format_utc(lease_end)
    return {"connectorId": target_connector, "csChargingProfiles": profile}, lease_end


def _placement(strategy: Strategy, *, connector_id: int, caps: Caps) -> tuple[str, int, int, int]:
    """(purpose, stackLevel, connectorId, chargingProfileId) for a rung of the ladder."""
    match strategy:
        case Strategy.TX_PROFILE:
            level = min(TX_STACK_LEVEL, caps.max_stack_level)
            return "TxProfile", level, connector_id, PROFILE_ID_BASE + connector_id
        case Strategy.TX_PROFILE_SL0:
            return "TxProfile", 0, connector_id, PROFILE_ID_BASE + connector_id
        case Strategy.TX_DEFAULT_CONNECTOR:
            level = min(TX_STACK_LEVEL, caps.max_stack_level)
            return "TxDefaultProfile", level, connector_id, PROFILE_ID_BASE + connector_id
        case _:
            level = min(TX_STACK_LEVEL, caps.max_stack_level)
            return "ChargePointMaxProfile", level, 0, PROFILE_ID_BASE
    raise AssertionError(strategy)  # pragma: no cover


def safe_default_profile(
    *, safe_da: int, caps: Caps, phases: int = 3, connector_id: int = 0
) -> dict[str, Any]:
    """The TxDefaultProfile at stack level 0: the safe share, for every new session and for
    a charger that lost csms (OCPP 1.6 §3.13.2; installed at boot and reconnect).

    On connector 0 it covers every connector. A charger that rejects it there gets one per
    connector (a TxDefaultProfile on connectorId > 0 governs that connector only), each
    with its own id, since a profile replaces any other of the same id on the charger.
    """
    unit, value = _limit_value(safe_da, caps=caps, phases=phases)
    return {
        "connectorId": connector_id,
        "csChargingProfiles": {
            "chargingProfileId": SAFE_DEFAULT_ID + connector_id,
            "stackLevel": SAFE_STACK_LEVEL,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": value}],
            },
        },
    }


def retry_after_s(attempt: int, *, base_s: float = 10.0, cap_s: float = 900.0) -> float:
    """Seconds before the `attempt`-th retry (1, 2, ...) of a safe default that was not
    taken: doubling from `base_s`, at most `cap_s`, so a charger that keeps refusing costs
    a few messages an hour."""
    return min(cap_s, base_s * float(1 << min(max(attempt - 1, 0), 30)))


def reserved_id(profile: Mapping[str, Any]) -> str | None:
    """Why an operator's profile may not use its id (the balancer's range), or None."""
    if profile["chargingProfileId"] in RESERVED_IDS:
        return (
            f"chargingProfileId {PROFILE_ID_BASE}-{RESERVED_IDS.stop - 1} is reserved for "
            "the balancer"
        )
    return None


def collides_with_balancer(profile: Mapping[str, Any]) -> str | None:
    """Why an operator's profile would replace one of the balancer's on a circuit member
    (same purpose and stackLevel, OCPP 1.6 §3.13.2), or None."""
    reserved = reserved_id(profile)
    if reserved is not None:
        return reserved
    pair = (profile["chargingProfilePurpose"], profile["stackLevel"])
    if pair in {("TxProfile", TX_STACK_LEVEL), ("TxDefaultProfile", SAFE_STACK_LEVEL)}:
        return f"{pair[0]} at stackLevel {pair[1]} is the balancer's on a circuit member"
    return None


@dataclass(frozen=True)
class Draw:
    """What a connector's meter says it draws, per phase, in deci-amps."""

    phases_da: tuple[int, ...]
    at: datetime


def overdraws(draw: Draw, *, limit_da: int) -> bool:
    """A draw beyond the limit by more than 1 A + 10 % (docs/load-balancing.md,
    "Verification"): a charger that accepted a limit and does not keep it."""
    return max(draw.phases_da, default=0) > limit_da + 10 + limit_da // 10


# -- idle cars and rotation (docs/load-balancing.md, "Idle cars and rotation") --

# Below this on every phase a car draws "nothing" (deci-amps): chargers report a few tenths
# of an amp of standby on a paused session.
IDLE_DRAW_DA = 10


@dataclass
class _Watch:
    serving: bool  # holds a limit above 0
    since: datetime  # ... since then, or waiting since then
    quiet_since: datetime | None = None  # SuspendedEV or ~0 A while serving, since then
    idle: bool = False
    times: int = 0  # found idle this many times in a row (offered again, still idle)


class IdleTracker:
    """Which sessions are idle and where each stands in the rotation, from the statuses,
    meter values and limits a connector had. Pure: time comes in with every call.

    A car is idle once it has drawn nothing (StatusNotification SuspendedEV, OCPP 1.6
    §4.9, or under 1 A on every phase) for `idle_after_s` while it was offered current;
    drawing again ends it. A limit of 0 proves nothing (the charger suspends the car), so
    only a session that holds a limit can become idle, and one that is offered current
    again after a pause must prove it anew.
    """

    def __init__(self, *, idle_after_s: float) -> None:
        self.idle_after_s = idle_after_s
        self._watches: dict[ConnectorKey, _Watch] = {}

    def start(self, key: ConnectorKey, *, serving: bool, since: datetime) -> None:
        """Know a session (from its last recorded limit after a restart, or its start)."""
        if key not in self._watches:
            self._watches[key] = _Watch(serving, since)

    def keys(self) -> set[ConnectorKey]:
        """The sessions it knows."""
        return set(self._watches)

    def forget(self, key: ConnectorKey) -> None:
        """The session ended."""
        self._watches.pop(key, None)

    def on_limit(self, key: ConnectorKey, *, limit_da: int, now: datetime) -> None:
        """The charger accepted a limit."""
        self.check(key, now)  # quiet until now: that counts
        watch = self._watches.setdefault(key, _Watch(False, now))
        if (limit_da > 0) != watch.serving:
            watch.serving, watch.since = limit_da > 0, now
            watch.quiet_since = None
            if watch.serving:
                watch.idle = False  # offered current again: it must prove it anew

    def on_status(self, key: ConnectorKey, *, status: str, now: datetime) -> bool:
        """A StatusNotification; True when the session's idleness changed."""
        if status == "SuspendedEV":
            return self._quiet(key, now)
        if status == "Charging":
            return self._busy(key)
        return False

    def on_draw(self, key: ConnectorKey, *, phases_da: Sequence[int], now: datetime) -> bool:
        """A meter reading of the current per phase; True when idleness changed."""
        if max(phases_da, default=0) < IDLE_DRAW_DA:
            return self._quiet(key, now)
        return self._busy(key)

    def check(self, key: ConnectorKey, now: datetime) -> bool:
        """True when the session became idle by now (quiet for `idle_after_s`)."""
        watch = self._watches.get(key)
        if watch is None or watch.idle or watch.quiet_since is None:
            return False
        if (now - watch.quiet_since).total_seconds() >= self.idle_after_s:
            watch.idle = True
            watch.times += 1
            return True
        return False

    def turn(self, key: ConnectorKey, *, order: int, now: datetime) -> Turn:
        """Where the session stands now (checks idleness first)."""
        self.check(key, now)
        watch = self._watches.setdefault(key, _Watch(False, now))
        return Turn(key, order, watch.serving, watch.since, watch.idle, watch.times)

    def _quiet(self, key: ConnectorKey, now: datetime) -> bool:
        watch = self._watches.get(key)
        if watch is not None and watch.serving and watch.quiet_since is None:
            watch.quiet_since = now
        return self.check(key, now)

    def _busy(self, key: ConnectorKey) -> bool:
        watch = self._watches.get(key)
        if watch is None:
            return False
        was, watch.idle, watch.quiet_since, watch.times = watch.idle, False, None, 0
        return was


@dataclass(frozen=True)
class Turn:
    """A session's place in the rotation."""

    key: ConnectorKey
    order: int  # plug-in order (the transaction id)
    serving: bool  # holds a limit above 0
    since: datetime  # since when it serves, or waits
    idle: bool = False
    idle_times: int = 0  # found idle this many times in a row


@dataclass(frozen=True)
class Rotation:
    """The allocator's `order` per session, and the sessions to treat as idle."""

    order: dict[ConnectorKey, int]
    idle: frozenset[ConnectorKey]


def reoffer_s(times: int, rotate_s: float) -> float:
    """How long an idle car found idle `times` times in a row waits at 0 A before it is
    offered its minimum again: `rotate_s`, doubling each time, at most 8 turns."""
    return rotate_s * float(1 << min(max(times - 1, 0), 3))


def rotation(turns: Sequence[Turn], *, now: datetime, rotate_s: float) -> Rotation:
    """The order in which sessions get their minimum, so that the minimum slots rotate.

    With more cars than minimum slots (IEC 61851-1's 6 A: five on 31.5 A), plug-in order
    would leave the last comers at 0 A all day. Instead a session keeps its slot for
    `rotate_s` (its turn); past that, the sessions waiting at 0 A, longest first, go before
    it. The reference study leaves this open (§5, "swap every 30 min"); without idle
    release and rotation its 6 A minimum starves the queue.

    Idle sessions go after all others (the allocator holds them at their minimum when
    there is room, so they can resume: "prefer hold at min over pausing", study §3.4). One
    that has waited at 0 A for `rotate_s` is offered its minimum again when its turn
    comes, as a hungry one: a car on a departure timer may want current by then. Each
    time it is found idle again the wait doubles (`reoffer_s`), so a full car costs the
    others less and less of a slot.
    """

    def idle(turn: Turn) -> bool:
        waited = (now - turn.since).total_seconds()
        return turn.idle and (turn.serving or waited < reoffer_s(turn.idle_times, rotate_s))

    def rank(turn: Turn) -> tuple[int, float, int, ConnectorKey]:
        held = (now - turn.since).total_seconds()
        stamp = turn.since.timestamp()
        if not turn.serving:
            return (1, stamp, turn.order, turn.key)  # waiting: longest first
        # Serving: within its turn first; the longest-serving gives way first.
        return (0 if held < rotate_s else 2, -stamp, turn.order, turn.key)

    ranked = sorted(turns, key=rank)
    return Rotation(
        order={turn.key: i for i, turn in enumerate(ranked)},
        idle=frozenset(turn.key for turn in ranked if idle(turn)),
    )
