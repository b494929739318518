"""The scenarios of `make bench`, by name, with the P1..P6 labels the report and docs use.

`--only` takes names (protocol_path) or the old labels (P1, which may stand for several
scenarios), in any case; `resolve` turns them into scenarios in the order given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from allocation import allocation
from report import Report

from scenarios.cluster_reconnect import cluster_reconnect
from scenarios.cluster_scaleout import cluster_scaleout
from scenarios.command_round_trip import command_round_trip
from scenarios.common import Options
from scenarios.connections import boot_storm, idle_memory
from scenarios.cpu_profile import cpu_profile
from scenarios.event_path import event_latency, outbox_drain
from scenarios.hostile import api_load, poison_mix
from scenarios.persisted_path import persisted_path
from scenarios.protocol_path import protocol_path
from scenarios.secured_storm import secured_storm
from scenarios.session_lifecycle import session_lifecycle
from scenarios.webhook_delivery import webhook_delivery

__all__ = ["ALIASES", "SCENARIOS", "Options", "Scenario", "describe", "resolve"]


@dataclass(frozen=True)
class Scenario:
    name: str  # for --only
    label: str  # in the report's text and in docs/performance.md
    measures: str  # one line for --help
    run: Callable[[Report, Options], Awaitable[None]]
    quick: bool  # part of --quick when --only is not given


SCENARIOS = [
    Scenario(
        "protocol_path",
        "P1",
        "calls/s, latency: no storage, beside reference servers",
        protocol_path,
        quick=True,
    ),
    Scenario(
        "persisted_path",
        "P2",
        "calls/s, latency of csms serve on SQLite/PostgreSQL",
        persisted_path,
        quick=True,
    ),
    Scenario("idle_memory", "P3", "RSS per idle booted charger", idle_memory, quick=False),
    Scenario("boot_storm", "P3", "every charger connecting at once", boot_storm, quick=False),
    Scenario(
        "secured_storm",
        "P3",
        "10,000 profile-1 (Basic auth) chargers reconnecting at once",
        secured_storm,
        quick=False,
    ),
    Scenario(
        "command_round_trip",
        "P4",
        "HTTP -> charger -> HTTP, idle and under load",
        command_round_trip,
        quick=True,
    ),
    Scenario("event_latency", "P5", "OCPP MeterValues -> MQTT event", event_latency, quick=True),
    Scenario(
        "outbox_drain",
        "P5",
        "events/s publishing a 100,000-event backlog",
        outbox_drain,
        quick=False,
    ),
    Scenario(
        "session_lifecycle",
        "P6",
        "sessions/s, latency per action, outbox backlog; nothing lost",
        session_lifecycle,
        quick=True,
    ),
    Scenario(
        "webhook_delivery",
        "P7",
        "webhook deliveries/s to a local receiver, OCPP -> POST p99",
        webhook_delivery,
        quick=True,
    ),
    Scenario(
        "allocation",
        "P8",
        "one circuit allocation pass, 1,000 connectors; profiles/connector/hour",
        allocation,
        quick=True,
    ),
    Scenario(
        "api_load",
        "H1",
        "charger Boot p50/p99, alone and with 50 API clients polling",
        api_load,
        quick=False,
    ),
    Scenario(
        "poison_mix",
        "H2",
        "healthy chargers' MeterValues/s, alone and beside 4 poisoning chargers",
        poison_mix,
        quick=False,
    ),
    Scenario(
        "cluster_scaleout",
        "C1",
        "one node in cluster mode vs standalone (msgs/s); forwarded vs local command p99",
        cluster_scaleout,
        quick=False,
    ),
    Scenario(
        "cluster_reconnect",
        "C2",
        "10,000 chargers on 3 nodes: a node killed, until the survivors hold them all",
        cluster_reconnect,
        quick=False,
    ),
    Scenario(
        "cpu_profile", "PROFILE", "py-spy: csms's CPU time by layer", cpu_profile, quick=False
    ),
]
BY_NAME = {s.name: s for s in SCENARIOS}
# Old names, still accepted so that existing commands and docs keep working.
ALIASES = {
    label.lower(): [s.name for s in SCENARIOS if s.label == label]
    for label in dict.fromkeys(s.label for s in SCENARIOS)
}


def resolve(names: list[str]) -> list[Scenario]:
    """Scenarios for names and aliases, in the order given, each once.

    Raises:
        ValueError: naming the unknown ones
    """
    unknown = [n for n in names if n.lower() not in BY_NAME and n.lower() not in ALIASES]
    if unknown:
        raise ValueError(", ".join(sorted(unknown)))
    chosen: dict[str, Scenario] = {}
    for name in names:
        for each in ALIASES.get(name.lower(), [name.lower()]):
            chosen.setdefault(each, BY_NAME[each])
    return list(chosen.values())


def describe() -> str:
    """The scenario list for --help: name, old label, what it measures, quick or not."""
    lines = [f"  {'name':<19} {'label':<8} {'quick':<6} measures"]
    for s in SCENARIOS:
        quick = "yes" if s.quick else ""
        lines.append(f"  {s.name:<19} {s.label:<8} {quick:<6} {s.measures}")
    return "\n".join(lines)
