"""Scenario files: parsing, validation, shipped files, and the per-charger plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenario import (
    Distribution,
    FaultKind,
    Scenario,
    ScenarioError,
    Span,
    parse_duration,
    plan_charger,
    shipped_scenarios,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2h 15m 10s", 8110.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        ("0.5h", 1800.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    """Durations read as seconds, with units and combinations."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-3", True, [1], "1h-5m"])
def test_parse_duration_rejects(text: object) -> None:
    """Anything that is not a duration is refused with a readable error."""
    with pytest.raises(ScenarioError):
        parse_duration(text)


def test_shipped_scenarios_parse() -> None:
    """Every shipped scenario parses, and the four documented ones exist."""
    names = {path.stem: Scenario.load(path) for path in shipped_scenarios()}
    assert {"idle", "commute", "faults", "boot-storm", "lifecycle"} <= set(names)
    assert names["commute"].sessions.per_connector >= 1
    assert names["lifecycle"].speed == 1.0
    assert {f.kind for f in names["faults"].faults} == set(FaultKind)
    assert names["boot-storm"].connect_spread == 0.0


def test_load_by_name_or_path() -> None:
    """A shipped scenario loads by bare name as well as by path."""
    by_name = Scenario.load("commute")
    by_path = Scenario.load(Path("simulators/scenarios/commute.toml"))
    assert by_name == by_path


FULL = """
name = "t"
description = "test"
speed = 60
duration = "2h"
seed = 5
[connect]
spread = "30s"
[charger]
vendor = "V"
model = "M"
max_power_kw = 11.0
phases = 1
meter_start_kwh = [1, 2]
[config]
HeartbeatInterval = 60
AuthorizeRemoteTxRequests = true
[sessions]
per_connector = 2
arrival = { start = "5m", spread = "1h", distribution = "normal" }
dwell = ["1h", "2h"]
battery_kwh = 50
soc_start = [0.1, 0.2]
[[faults]]
kind = "offline"
at = "10m"
duration = ["1m", "2m"]
probability = 0.5
"""


def test_full_scenario() -> None:
    """Every section is read into typed values with units converted."""
    s = Scenario.parse(FULL)
    assert (s.name, s.speed, s.duration, s.seed, s.connect_spread) == ("t", 60.0, 7200.0, 5, 30.0)
    assert s.charger.max_power_w == 11_000.0
    assert s.charger.phases == 1
    assert s.charger.meter_start_wh == Span(1000.0, 2000.0)
    assert s.config_map == {"HeartbeatInterval": "60", "AuthorizeRemoteTxRequests": "true"}
    assert s.sessions.arrival_start == 300.0
    assert s.sessions.distribution is Distribution.NORMAL
    assert s.sessions.dwell == Span(3600.0, 7200.0)
    assert s.sessions.battery_wh == Span(50_000.0, 50_000.0)
    assert s.faults[0].kind is FaultKind.OFFLINE
    assert s.faults[0].duration == Span(60.0, 120.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("speed = 0", "speed must be positive"),
        ("bogus = 1", "unknown key"),
        ("[charger]\nvoltage = 'high'", "expected a number"),
        ("[charger]\nphases = 2", "phases must be 1 or 3"),
        ("[config]\nNoSuchKey = 1", "unknown configuration key"),
        ("[config]\nHeartbeatInterval = 'often'", "invalid value"),
        ("[sessions]\nsoc_start = [0.5, 1.5]", "within"),
        ("[sessions]\ndwell = [5, 1]", "above high"),
        ("[[faults]]\nkind = 'meteor'", "must be one of"),
        ("[[faults]]\nkind = 'offline'\nprobability = 2", "probability"),
        ("duration = 'soon'", "cannot read duration"),
        ("name = ", "Invalid"),
    ],
)
def test_invalid_scenarios(text: str, message: str) -> None:
    """Mistakes in a scenario file are reported with where and why."""
    with pytest.raises(ScenarioError, match=message):
        Scenario.parse(text)


def test_replace_merges_config() -> None:
    """replace() changes fields and merges configuration keys."""
    s = Scenario.parse(FULL).replace(speed=3600.0, config={"MeterValueSampleInterval": 900})
    assert s.speed == 3600.0
    assert s.config_map["MeterValueSampleInterval"] == "900"
    assert s.config_map["HeartbeatInterval"] == "60"


def test_plans_are_reproducible_and_within_bounds() -> None:
    """Plans depend only on seed and charger number, and draws stay in their ranges."""
    s = Scenario.parse(FULL)
    plan = plan_charger(s, 7, "SIM-00007", 2)
    assert plan == plan_charger(s, 7, "SIM-00007", 2)
    assert plan != plan_charger(s, 8, "SIM-00008", 2)
    assert 0.0 <= plan.connect_at <= 30.0
    assert all(1000.0 <= wh <= 2000.0 for wh in plan.meter_start_wh)
    for visits in plan.sessions:
        assert len(visits) == 2
        assert 300.0 <= visits[0].arrival <= 3900.0
        for visit in visits:
            assert 3600.0 <= visit.dwell <= 7200.0
            assert 0.1 <= visit.soc_start <= 0.2
            assert visit.soc_target >= visit.soc_start
            assert visit.id_tag == "TAG-00007"


def test_arrivals_spread_over_the_window() -> None:
    """Across a fleet, uniform arrivals cover the window rather than bunching up."""
    s = Scenario.parse("[sessions]\nper_connector = 1\narrival = { start = '0s', spread = '1h' }")
    arrivals = sorted(plan_charger(s, n, f"C{n}", 1).sessions[0][0].arrival for n in range(400))
    assert arrivals[0] < 120.0
    assert arrivals[-1] > 3480.0
    assert 1500.0 < arrivals[200] < 2100.0


def test_fault_probability_and_repeats() -> None:
    """A fault hits about its probability of chargers, once per repeat, `every` apart."""
    s = Scenario.parse(
        "[[faults]]\nkind = 'disconnect'\nat = '1h'\nprobability = 0.25\nrepeat = 3\nevery = '2h'"
    )
    plans = [plan_charger(s, n, f"C{n}", 2) for n in range(800)]
    hits = sum(len(p.faults) for p in plans)
    assert 0.18 * 2400 < hits < 0.32 * 2400
    times = {f.at for p in plans for f in p.faults}
    assert times <= {3600.0, 3600.0 + 7200.0, 3600.0 + 14400.0}


def test_id_tags_are_truncated_to_the_ocpp_limit() -> None:
    """Generated idTags never exceed the 20 characters OCPP allows."""
    s = Scenario.parse("[sessions]\nper_connector = 1\nid_tag = 'A-VERY-LONG-TAG-{identity}'")
    visit = plan_charger(s, 1, "SIM-000000001", 1).sessions[0][0]
    assert len(visit.id_tag) == 20
