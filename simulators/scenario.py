"""Scenario files (TOML) and the per-charger plans drawn from them.

A scenario describes a fleet's day in *simulated* time; ``speed`` says how many simulated
seconds pass per real second, so a commuter day can run in seconds. Everything random is
drawn from a generator seeded with the scenario seed and the charger number, so a plan
is reproducible.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from .config import ConfigStore

__all__ = [
    "SCENARIO_DIR",
    "ChargerPlan",
    "ChargerSpec",
    "Distribution",
    "FaultKind",
    "FaultSpec",
    "PlannedFault",
    "PlannedSession",
    "Scenario",
    "ScenarioError",
    "SessionSpec",
    "Span",
    "parse_duration",
    "plan_charger",
    "shipped_scenarios",
]

SCENARIO_DIR: Final = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message says where and why."""


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"500ms"`` or ``"1d"``."""
    if isinstance(value, bool):
        raise ScenarioError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        if value < 0 or math.isnan(value):
            raise ScenarioError(f"{what}: negative duration {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ScenarioError(f"{what}: expected a duration, got {value!r}")
    text = value.strip().lower().replace(" ", "")
    try:
        return parse_duration(float(text), what)
    except ValueError:
        pass
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ScenarioError(f"{what}: cannot read duration {value!r} (try '90s', '5m', '1h30m')")
    return total


@dataclass(frozen=True, slots=True)
class Span:
    """A value drawn uniformly from ``[low, high]`` (a constant when both are equal)."""

    low: float
    high: float

    @classmethod
    def of(cls, value: float) -> Span:
        """A constant."""
        return cls(value, value)

    def draw(self, rng: random.Random) -> float:
        """One value."""
        if self.high <= self.low:
            return self.low
        return rng.uniform(self.low, self.high)

    @classmethod
    def parse(cls, value: Any, what: str, *, duration: bool = False, scale: float = 1.0) -> Span:
        """From a scalar or a ``[low, high]`` pair (durations as in :func:`parse_duration`)."""

        def one(item: Any) -> float:
            if duration:
                return parse_duration(item, what)
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise ScenarioError(f"{what}: expected a number, got {item!r}")
            return float(item) * scale

        if isinstance(value, list):
            if len(value) != 2:
                raise ScenarioError(f"{what}: a range is [low, high], got {value!r}")
            low, high = one(value[0]), one(value[1])
            if high < low:
                raise ScenarioError(f"{what}: low {value[0]!r} is above high {value[1]!r}")
            return cls(low, high)
        number = one(value)
        return cls(number, number)


class Distribution(StrEnum):
    """How arrivals are spread over their window."""

    UNIFORM = "uniform"
    NORMAL = "normal"  # bell-shaped around the middle of the window, clipped to it


class FaultKind(StrEnum):
    """What a scripted fault does."""

    FAULTED = "faulted"  # StatusNotification Faulted with an error code; charging stops
    DISCONNECT = "disconnect"  # the connection drops; the charger reconnects with backoff
    OFFLINE = "offline"  # no network for a while; transaction messages are queued
    POWER_CUT = "power_cut"  # power lost: connection and sessions drop, reboot on restore


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    """The simulated hardware."""

    vendor: str = "SimVendor"
    model: str = "SIM-AC22"
    firmware: str = "1.0.0"
    serial_pattern: str = "SN-{n:08d}"
    meter_type: str = "SimMeter"
    max_power_w: float = 22080.0  # per connector: 32 A x 3 x 230 V
    phases: int = 3
    voltage: float = 230.0
    meter_start_wh: Span = Span(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """Scripted EV sessions: who arrives when, how long they stay, what they need."""

    per_connector: int = 0
    arrival_start: float = 0.0
    arrival_spread: float = 0.0
    distribution: Distribution = Distribution.UNIFORM
    dwell: Span = Span(3600.0, 3600.0)
    unplug_after: Span = Span(60.0, 60.0)
    gap: Span = Span(600.0, 600.0)
    authorize: bool = True
    id_tag: str = "TAG-{n:05d}"
    battery_wh: Span = Span(60000.0, 60000.0)
    ev_max_power_w: Span = Span(11000.0, 11000.0)
    soc_start: Span = Span(0.3, 0.3)
    soc_target: Span = Span(1.0, 1.0)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """A scripted fault, hitting a fraction of the fleet somewhere in a time window."""

    kind: FaultKind
    at: float = 0.0
    spread: float = 0.0
    probability: float = 1.0
    duration: Span = Span(60.0, 60.0)
    connector: int | None = None  # None: a random connector (0 = the whole charger)
    error_code: str = "OtherError"
    vendor_error_code: str = ""
    info: str = ""
    repeat: int = 1
    every: float = 3600.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario file."""

    name: str = "custom"
    description: str = ""
    speed: float = 1.0
    duration: float | None = None  # simulated seconds; None: until stopped
    seed: int = 1
    connect_spread: float = 0.0
    charger: ChargerSpec = ChargerSpec()
    config: tuple[tuple[str, str], ...] = ()
    sessions: SessionSpec = SessionSpec()
    faults: tuple[FaultSpec, ...] = ()
    source: str = field(default="", compare=False)

    @property
    def config_map(self) -> dict[str, str]:
        """Starting configuration key values."""
        return dict(self.config)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (``config`` may be given as a mapping to merge)."""
        if "config" in changes and isinstance(changes["config"], Mapping):
            merged = self.config_map
            merged.update({k: ConfigStore.text(v) for k, v in changes["config"].items()})
            changes["config"] = tuple(merged.items())
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a scenario file, or a shipped scenario by name (``commute``)."""
        candidate = Path(path)
        if not candidate.exists() and not candidate.suffix:
            shipped = SCENARIO_DIR / f"{candidate.name}.toml"
            if shipped.exists():
                candidate = shipped
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc.strerror}") from exc
        return cls.parse(text, source=str(candidate))

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> Scenario:
        """Parse TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: {exc}") from exc
        try:
            return cls.from_dict(data, source=source)
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
        """Build from already-decoded TOML."""
        reader = _Reader(data, "")
        name = reader.text("name", "custom")
        description = reader.text("description", "")
        speed = reader.number("speed", 1.0)
        if speed <= 0:
            raise ScenarioError("speed must be positive")
        duration_raw = reader.raw("duration")
        duration = None if duration_raw is None else parse_duration(duration_raw, "duration")
        seed = int(reader.number("seed", 1))
        connect = reader.table("connect")
        connect_spread = parse_duration(connect.raw("spread", 0), "connect.spread")
        connect.done()
        charger = _charger(reader.table("charger"))
        config_table = reader.raw("config", {})
        if not isinstance(config_table, dict):
            raise ScenarioError("[config] must be a table of configuration keys")
        store = ConfigStore()
        config: list[tuple[str, str]] = []
        for key, value in config_table.items():
            try:
                store.set(key, value)
            except (KeyError, ValueError) as exc:
                raise ScenarioError(f"config.{key}: {exc.args[0]}") from exc
            config.append((key, store.get(key)))
        sessions = _sessions(reader.table("sessions"))
        faults_raw = reader.raw("faults", [])
        if not isinstance(faults_raw, list):
            raise ScenarioError("faults must be an array of tables: [[faults]]")
        faults = tuple(_fault(_Reader(item, f"faults[{i}]")) for i, item in enumerate(faults_raw))
        reader.done()
        return cls(
            name=name,
            description=description,
            speed=speed,
            duration=duration,
            seed=seed,
            connect_spread=connect_spread,
            charger=charger,
            config=tuple(config),
            sessions=sessions,
            faults=faults,
            source=source,
        )


class _Reader:
    """Reads a TOML table, remembering which keys were used to reject unknown ones."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where or 'scenario'}: expected a table")
        self.data: dict[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def text(self, key: str, default: str) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise ScenarioError(f"{self._name(key)}: expected a string, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{self._name(key)}: expected a number, got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ScenarioError(f"{self._name(key)}: expected true or false, got {value!r}")
        return value

    def duration(self, key: str, default: float) -> float:
        return parse_duration(self.raw(key, default), self._name(key))

    def span(self, key: str, default: Span, *, duration: bool = False, scale: float = 1.0) -> Span:
        if key not in self.data:
            self.used.add(key)
            return default
        return Span.parse(self.raw(key), self._name(key), duration=duration, scale=scale)

    def table(self, key: str) -> _Reader:
        return _Reader(self.raw(key, {}), self._name(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ScenarioError(f"{self.where or 'scenario'}: unknown key(s) {', '.join(unknown)}")


def _charger(r: _Reader) -> ChargerSpec:
    default = ChargerSpec()
    spec = ChargerSpec(
        vendor=r.text("vendor", default.vendor),
        model=r.text("model", default.model),
        firmware=r.text("firmware", default.firmware),
        serial_pattern=r.text("serial_pattern", default.serial_pattern),
        meter_type=r.text("meter_type", default.meter_type),
        max_power_w=r.number("max_power_kw", default.max_power_w / 1000.0) * 1000.0,
        phases=int(r.number("phases", default.phases)),
        voltage=r.number("voltage", default.voltage),
        meter_start_wh=r.span("meter_start_kwh", default.meter_start_wh, scale=1000.0),
    )
    r.done()
    if spec.phases not in (1, 3):
        raise ScenarioError("charger.phases must be 1 or 3")
    return spec


def _sessions(r: _Reader) -> SessionSpec:
    default = SessionSpec()
    arrival = r.table("arrival")
    spec = SessionSpec(
        per_connector=int(r.number("per_connector", default.per_connector)),
        arrival_start=arrival.duration("start", 0.0),
        arrival_spread=arrival.duration("spread", 0.0),
        distribution=Distribution(arrival.text("distribution", "uniform")),
        dwell=r.span("dwell", default.dwell, duration=True),
        unplug_after=r.span("unplug_after", default.unplug_after, duration=True),
        gap=r.span("gap", default.gap, duration=True),
        authorize=r.flag("authorize", default.authorize),
        id_tag=r.text("id_tag", default.id_tag),
        battery_wh=r.span("battery_kwh", default.battery_wh, scale=1000.0),
        ev_max_power_w=r.span("ev_max_kw", default.ev_max_power_w, scale=1000.0),
        soc_start=r.span("soc_start", default.soc_start),
        soc_target=r.span("soc_target", default.soc_target),
    )
    arrival.done()
    r.done()
    if spec.per_connector < 0:
        raise ScenarioError("sessions.per_connector must not be negative")
    for what, span in (("soc_start", spec.soc_start), ("soc_target", spec.soc_target)):
        if not 0.0 <= span.low <= span.high <= 1.0:
            raise ScenarioError(f"sessions.{what} must be within [0, 1]")
    if spec.battery_wh.low <= 0:
        raise ScenarioError("sessions.battery_kwh must be positive")
    return spec


def _fault(r: _Reader) -> FaultSpec:
    try:
        kind = FaultKind(r.text("kind", ""))
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise ScenarioError(f"{r.where}.kind must be one of {kinds}") from None
    connector_raw = r.raw("connector")
    spec = FaultSpec(
        kind=kind,
        at=r.duration("at", 0.0),
        spread=r.duration("spread", 0.0),
        probability=r.number("probability", 1.0),
        duration=r.span("duration", Span.of(60.0), duration=True),
        connector=None if connector_raw is None else int(connector_raw),
        error_code=r.text("error_code", "OtherError"),
        vendor_error_code=r.text("vendor_error_code", ""),
        info=r.text("info", ""),
        repeat=int(r.number("repeat", 1)),
        every=r.duration("every", 3600.0),
    )
    r.done()
    if not 0.0 <= spec.probability <= 1.0:
        raise ScenarioError(f"{r.where}.probability must be within [0, 1]")
    if spec.repeat < 1:
        raise ScenarioError(f"{r.where}.repeat must be at least 1")
    if len(spec.vendor_error_code) > 50 or len(spec.info) > 50:
        raise ScenarioError(f"{r.where}: vendor_error_code and info are at most 50 characters")
    return spec


# --- plans -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """One EV visit. ``arrival`` is from the run start for the first visit on a connector,
    from the previous visit's unplug for later ones."""

    connector_id: int
    arrival: float
    dwell: float
    unplug_after: float
    id_tag: str
    authorize: bool
    battery_wh: float
    ev_max_power_w: float
    soc_start: float
    soc_target: float


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """A fault at ``at`` simulated seconds from the run start."""

    kind: FaultKind
    at: float
    duration: float
    connector_id: int
    error_code: str
    vendor_error_code: str
    info: str


@dataclass(frozen=True, slots=True)
class ChargerPlan:
    """Everything scripted for one charger."""

    connect_at: float
    meter_start_wh: tuple[float, ...]  # per connector, index 0 is connector 1
    sessions: tuple[tuple[PlannedSession, ...], ...]  # per connector
    faults: tuple[PlannedFault, ...]


def _arrival(spec: SessionSpec, rng: random.Random) -> float:
    if spec.arrival_spread <= 0:
        return spec.arrival_start
    if spec.distribution is Distribution.NORMAL:
        middle = spec.arrival_spread / 2.0
        offset = min(max(rng.gauss(middle, spec.arrival_spread / 6.0), 0.0), spec.arrival_spread)
        return spec.arrival_start + offset
    return spec.arrival_start + rng.uniform(0.0, spec.arrival_spread)


def plan_charger(scenario: Scenario, n: int, identity: str, connectors: int) -> ChargerPlan:
    """Draw charger number ``n``'s plan (reproducible for a given scenario seed)."""
    rng = random.Random(f"{scenario.seed}:{n}")
    connect_at = rng.uniform(0.0, scenario.connect_spread) if scenario.connect_spread else 0.0
    meter_start = tuple(
        float(round(scenario.charger.meter_start_wh.draw(rng))) for _ in range(connectors)
    )
    spec = scenario.sessions
    per_connector: list[tuple[PlannedSession, ...]] = []
    for connector_id in range(1, connectors + 1):
        visits: list[PlannedSession] = []
        for visit in range(spec.per_connector):
            soc_start = spec.soc_start.draw(rng)
            soc_target = max(soc_start, spec.soc_target.draw(rng))
            visits.append(
                PlannedSession(
                    connector_id=connector_id,
                    arrival=_arrival(spec, rng) if visit == 0 else spec.gap.draw(rng),
                    dwell=spec.dwell.draw(rng),
                    unplug_after=spec.unplug_after.draw(rng),
                    id_tag=spec.id_tag.format(
                        n=n, connector=connector_id, visit=visit + 1, identity=identity
                    )[:20],
                    authorize=spec.authorize,
                    battery_wh=spec.battery_wh.draw(rng),
                    ev_max_power_w=spec.ev_max_power_w.draw(rng),
                    soc_start=soc_start,
                    soc_target=soc_target,
                )
            )
        per_connector.append(tuple(visits))
    faults: list[PlannedFault] = []
    for fault in scenario.faults:
        for repeat in range(fault.repeat):
            if rng.random() >= fault.probability:
                continue
            connector_id = (
                fault.connector if fault.connector is not None else rng.randint(1, connectors)
            )
            at = fault.at + repeat * fault.every
            if fault.spread:
                at += rng.uniform(0.0, fault.spread)
            faults.append(
                PlannedFault(
                    kind=fault.kind,
                    at=at,
                    duration=fault.duration.draw(rng),
                    connector_id=min(max(connector_id, 0), connectors),
                    error_code=fault.error_code,
                    vendor_error_code=fault.vendor_error_code,
                    info=fault.info,
                )
            )
    faults.sort(key=lambda f: f.at)
    return ChargerPlan(connect_at, meter_start, tuple(per_connector), tuple(faults))


def shipped_scenarios() -> list[Path]:
    """The scenario files that come with the simulator."""
    return sorted(SCENARIO_DIR.glob("*.toml"))
