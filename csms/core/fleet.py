"""What the dashboard shows of a fleet: each charger's state, the counts, the chart points.

Pure: the rows, the set of live chargers and the time are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum

# The "offline > 10 min": long enough to ride out a reconnect or a reboot.
STALE_AFTER = timedelta(minutes=10)

CHARGING_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})


class FleetFilter(StrEnum):
    ALL = "all"
    ONLINE = "online"
    OFFLINE = "offline"
    CHARGING = "charging"
    FAULTED = "faulted"
    STALE = "stale"  # offline for more than STALE_AFTER


@dataclass(frozen=True)
class ChargerRow:
    """What the fleet view needs of a charger."""

    charge_point_id: str
    vendor: str | None
    model: str | None
    firmware_version: str | None
    security_profile: int
    last_seen: datetime | None
    disconnected_at: datetime | None
    connected_at: datetime | None
    # (connectorId, OCPP status, errorCode), connector 0 included
    connectors: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True)
class ChargerState:
    row: ChargerRow
    online: bool
    charging: bool
    faulted: bool
    stale: bool

    def matches(self, wanted: FleetFilter, search: str) -> bool:
        if search and not _found(self.row, search.lower()):
            return False
        return {
            FleetFilter.ALL: True,
            FleetFilter.ONLINE: self.online,
            FleetFilter.OFFLINE: not self.online,
            FleetFilter.CHARGING: self.charging,
            FleetFilter.FAULTED: self.faulted,
            FleetFilter.STALE: self.stale,
        }[wanted]


@dataclass(frozen=True)
class FleetCounts:
    total: int
    online: int
    charging: int
    faulted: int
    stale: int


def charger_state(row: ChargerRow, *, online: bool, now: datetime) -> ChargerState:
    """Online, charging, faulted, and offline for longer than STALE_AFTER."""
    statuses = [status for connector_id, status, _ in row.connectors if connector_id > 0]
    faulted = any(status == "Faulted" for _, status, _ in row.connectors)
    offline_since = row.disconnected_at or row.last_seen or row.connected_at
    stale = not online and (offline_since is None or now - offline_since > STALE_AFTER)
    return ChargerState(
        row=row,
        online=online,
        charging=online and any(status in CHARGING_STATUSES for status in statuses),
        faulted=faulted,
        stale=stale,
    )


def fleet_counts(states: Sequence[ChargerState]) -> FleetCounts:
    return FleetCounts(
        total=len(states),
        online=sum(state.online for state in states),
        charging=sum(state.charging for state in states),
        faulted=sum(state.faulted for state in states),
        stale=sum(state.stale for state in states),
    )


def _found(row: ChargerRow, needle: str) -> bool:
    fields = (row.charge_point_id, row.vendor, row.model, row.firmware_version)
    return any(needle in field.lower() for field in fields if field)


# -- chart points -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRow:
    """A stored sampled value, as the chart needs it."""

    timestamp: datetime
    measurand: str
    unit: str
    phase: str | None
    value: str


@dataclass(frozen=True)
class ChartPoint:
    """Power (W) and energy register (Wh) at one instant; either may be missing."""

    at: datetime
    power_w: Decimal | None
    energy_wh: Decimal | None


_SCALE = {"W": Decimal(1), "kW": Decimal(1000), "Wh": Decimal(1), "kWh": Decimal(1000)}
_POWER = "Power.Active.Import"
_ENERGY = "Energy.Active.Import.Register"


def chart_points(samples: Iterable[SampleRow]) -> list[ChartPoint]:
    """Power and energy per timestamp, in time order.

    OCPP 1.6 §7.31: a value without a phase is the total; when a charger reports only
    per-phase power (L1, L2, L3), their sum is the total.
    """
    power_total: dict[datetime, Decimal] = {}
    power_phases: dict[datetime, Decimal] = {}
    energy: dict[datetime, Decimal] = {}
    for sample in samples:
        scaled = _scaled(sample)
        if scaled is None:
            continue
        if sample.measurand == _POWER:
            if sample.phase in (None, ""):
                power_total[sample.timestamp] = scaled
            elif sample.phase in ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N"):
                power_phases[sample.timestamp] = power_phases.get(sample.timestamp, Decimal(0))
                power_phases[sample.timestamp] += scaled
        elif sample.measurand == _ENERGY and sample.phase in (None, ""):
            energy[sample.timestamp] = scaled
    times = sorted(set(power_total) | set(power_phases) | set(energy))
    return [
        ChartPoint(
            at=at,
            power_w=power_total.get(at, power_phases.get(at)),
            energy_wh=energy.get(at),
        )
        for at in times
    ]


def _scaled(sample: SampleRow) -> Decimal | None:
    scale = _SCALE.get(sample.unit or ("Wh" if sample.measurand == _ENERGY else "W"))
    if scale is None:
        return None
    try:
        return Decimal(sample.value) * scale
    except InvalidOperation:
        return None
