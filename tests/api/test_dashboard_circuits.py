"""The dashboard's circuits section: per-phase bars of what the balancer gave against each
circuit's limit (sub-circuits and base load included), members with their allocation, and
the time of the last one; read-only for every role."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.dashboard_circuits import circuit_views
from csms.store import circuits
from csms.store.db import Database
from csms.store.tables import Circuit, CircuitAllocation, CircuitAllocationChange, CircuitMember
from simulators.model import EvSpec
from tests.api.test_circuits import FAST, booted
from tests.api.test_dashboard import add_account, logged_in, root_of
from tests.support import (
    RunningCsms,
    Subscriber,
    mqtt_of,
    running_csms,
    settings_for,
    subscribed,
    writing,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms whose balancer coalesces for 50 ms (tests/api/test_circuits.py)."""
    settings = dataclasses.replace(settings_for(database_url), balancing=FAST)
    async with running_csms(settings) as running:
        yield running


def bars_of(html: str, circuit_id: str) -> dict[str, tuple[str, str, str]]:
    """A circuit's bars as the page states them: phase -> (allocated, base, limit)."""
    section = html.split(f'id="circuit-{circuit_id}"', 1)[1].split("</section>", 1)[0]
    found = re.findall(
        r'role="meter".*?data-phase="(L\d)" data-allocated="([\d.]+)" '
        r'data-base="([\d.]+)" data-limit="([\d.]+)"',
        section,
        re.S,
    )
    return {phase: (allocated, base, limit) for phase, allocated, base, limit in found}


def member_row(html: str, key: str) -> str:
    """The text of a member's row (`charge point/connector`)."""
    row = html.split(f'data-member="{key}"', 1)[1].split("</tr>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()


async def test_bars_show_allocations_per_grid_phase_against_the_limit(csms: RunningCsms) -> None:
    """Two sessions on a sub-circuit, a three-phase one and a one-phase one rotated onto grid
    L2: the bars add their limits on the phases they load, the parent adds its base load,
    and each member row shows what it holds; after a stop its amps leave the bars."""
    await add_account(csms, "vic", "viewer")
    three = await booted(csms, "DC-3P")
    one = await booted(csms, "DC-1P")
    try:
        async with (
            csms.api() as api,
            subscribed(mqtt_of(csms).url, mqtt_of(csms).topic_prefix) as events,
        ):
            assert (await api.put("/id-tags/TAG-DC", json={"status": "Accepted"})).is_success
            site = {"name": "Site", "phaseLimitsA": [63, 63, 63], "baseLoadA": [10, 0, 0]}
            assert (await api.put("/circuits/site", json=site)).status_code == 201
            park = {
                "name": "Car park",
                "parentId": "site",
                "phaseLimitsA": [32, 32, 32],
                "members": [
                    {"chargePointId": "DC-3P", "maxCurrentA": 16},
                    {
                        "chargePointId": "DC-1P",
                        "connectorId": 1,
                        "phases": 1,
                        "phaseRotation": "STR",
                        "maxCurrentA": 10,
                    },
                ],
            }
            assert (await api.put("/circuits/park", json=park)).status_code == 201
            three.plug_in(1, "TAG-DC")
            one.plug_in(1, "TAG-DC")
            allocated = await events.until(2, of_type="circuit.allocation")
            assert sorted(e["data"]["limitA"] for e in allocated) == [10.0, 16.0]

            async with logged_in(csms, "vic") as client:
                page = await client.get("/circuits")
                assert page.status_code == 200
                assert bars_of(page.text, "park") == {
                    "L1": ("16", "0", "32"),
                    "L2": ("26", "0", "32"),
                    "L3": ("16", "0", "32"),
                }
                assert bars_of(page.text, "site") == {
                    "L1": ("16", "10", "63"),
                    "L2": ("26", "0", "63"),
                    "L3": ("16", "0", "63"),
                }
                assert 'aria-valuetext="L1: 16 A allocated, 10 A base load, of 63 A"' in page.text
                assert re.search(r"16 A cap, tx \d+", member_row(page.text, "DC-3P/0"))
                assert "(grid L2)" in member_row(page.text, "DC-1P/1")
                assert re.search(r"#1: 10 A cap, tx \d+", member_row(page.text, "DC-1P/1"))
                last = re.search(
                    r'id="circuit-park".*?class="last-allocation" datetime="([^"]+)"',
                    page.text,
                    re.S,
                )
                assert last is not None
                assert datetime.fromisoformat(last.group(1)) <= datetime.now(UTC)
                # The site has no members of its own: its last allocation is the car park's.
                site_last = re.search(
                    r'id="circuit-site".*?class="last-allocation" datetime="([^"]+)"',
                    page.text,
                    re.S,
                )
                assert site_last is not None
                assert site_last.group(1) == last.group(1)
                # The section follows live events through its own fragment.
                assert 'data-live-refresh="/circuits-table"' in page.text
                assert "circuit.allocation" in page.text

                one.stop_session(1)
                await events.until(1, of_type="session.stopped")
                table = await client.get("/circuits-table")
            assert table.status_code == 200
            assert "<html" not in table.text
            assert bars_of(table.text, "park")["L2"] == ("16", "0", "32")
            assert "nothing charging" in member_row(table.text, "DC-1P/1")
    finally:
        await three.close()
        await one.close()


async def test_a_one_phase_car_on_a_three_phase_member_counts_on_one_bar(
    csms: RunningCsms,
) -> None:
    """Once meter values show a one-phase car, its allocation is published, stored and
    drawn on the one grid phase it loads, not on all three the charger is wired for."""
    await add_account(csms, "vic", "viewer")
    metered = {"MeterValuesSampledData": "Current.Import", "MeterValueSampleInterval": 1}
    charger = await booted(csms, "DC-CAR1", **metered)
    try:
        async with (
            csms.api() as api,
            subscribed(mqtt_of(csms).url, mqtt_of(csms).topic_prefix) as events,
        ):
            assert (await api.put("/id-tags/TAG-1P", json={"status": "Accepted"})).is_success
            park = {
                "name": "Car park",
                "phaseLimitsA": [32, 32, 32],
                "members": [{"chargePointId": "DC-CAR1", "maxCurrentA": 16}],
            }
            assert (await api.put("/circuits/park", json=park)).status_code == 201
            charger.plug_in(1, "TAG-1P", ev=EvSpec(phases=1), dwell=3600)
            event = await allocation_on(events, phases=1)
            assert (event["data"]["limitA"], event["data"]["connectorId"]) == (16.0, 1)
            [row] = (await api.get("/circuits/park/allocation")).json()["connectors"]
            assert (row["limitA"], row["phases"]) == (16.0, 1)
            history = (await api.get("/circuits/park/allocation/history")).json()["items"]
            assert (history[0]["limitA"], history[0]["phases"]) == (16.0, 1)
            async with logged_in(csms, "vic") as client:
                page = await client.get("/circuits")
            assert bars_of(page.text, "park") == {
                "L1": ("16", "0", "32"),
                "L2": ("0", "0", "32"),
                "L3": ("0", "0", "32"),
            }
            assert "16 A on 1 phase" in member_row(page.text, "DC-CAR1/0")
    finally:
        await charger.close()


async def allocation_on(events: Subscriber, *, phases: int) -> dict[str, Any]:
    """The first `circuit.allocation` counted on `phases` phases, waiting for it."""
    while True:
        seen = events.of("circuit.allocation")
        found = [e for e in seen if e["data"]["phases"] == phases]
        if found:
            return found[0]
        await events.until(len(seen) + 1, of_type="circuit.allocation")


async def test_circuits_page_is_in_the_nav_and_says_when_there_are_none(
    csms: RunningCsms,
) -> None:
    """With no circuits the page says how to add one; the header links to it."""
    await add_account(csms, "ops", "operator")
    async with logged_in(csms, "ops") as client:
        page = await client.get("/circuits")
        fleet = await client.get("/")
    assert page.status_code == 200
    assert 'id="no-circuits"' in page.text
    assert '<a href="/circuits" aria-current="page">' in page.text
    assert '<a href="/circuits">' in fleet.text


async def test_circuits_pages_need_a_login(csms: RunningCsms) -> None:
    """Without a session the page redirects to the login form and the fragment is 401."""
    async with httpx.AsyncClient(base_url=root_of(csms)) as client:
        page = await client.get("/circuits")
        table = await client.get("/circuits-table")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/circuits"
    assert table.status_code == 401


AT = datetime(2026, 1, 1, tzinfo=UTC)


def _circuit(
    cid: str, parent: str | None, limit: float, base: list[float] | None = None
) -> Circuit:
    return Circuit(id=cid, name=cid, parent_id=parent, phase_limits_a=[limit] * 3, base_load_a=base)


def _allocation(cp: str, connector: int, circuit: str, limit: float) -> CircuitAllocation:
    return CircuitAllocation(
        charge_point_id=cp,
        connector_id=connector,
        circuit_id=circuit,
        limit_a=limit,
        reason="circuit",
        status="accepted",
        changed_at=AT,
    )


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        # Both connectors of a whole-charger TRS member load grid L1 and L3 (its L1 is on
        # grid L3); the leaf's bars add both, the root adds the leaf and its own base.
        ({("A", 1), ("A", 2)}, {"leaf": [15.0, 0.0, 15.0], "root": [15.0, 0.0, 15.0]}),
        # An allocation whose session ended counts no more.
        ({("A", 1)}, {"leaf": [7.5, 0.0, 7.5], "root": [7.5, 0.0, 7.5]}),
        (set(), {"leaf": [0.0, 0.0, 0.0], "root": [0.0, 0.0, 0.0]}),
    ],
)
def test_views_add_limits_on_the_grid_phases_up_the_tree(
    running: set[tuple[str, int]], expected: dict[str, list[float]]
) -> None:
    """A limit counts on the grid phases its member loads, on its circuit and every parent."""
    rows = [_circuit("root", None, 100, [1, 2, 3]), _circuit("leaf", "root", 40)]
    members = [
        CircuitMember(
            charge_point_id="A", connector_id=0, circuit_id="leaf", phase_rotation="TRS", phases=2
        )
    ]
    allocations = [_allocation("A", 1, "leaf", 7.5), _allocation("A", 2, "leaf", 7.5)]
    views = circuit_views(rows, members, allocations, running=running, last={"leaf": AT})
    assert [(v.circuit.id, v.depth) for v in views] == [("root", 0), ("leaf", 1)]
    by_id = {v.circuit.id: v for v in views}
    assert [b.allocated_a for b in by_id["leaf"].bars] == expected["leaf"]
    assert [b.allocated_a for b in by_id["root"].bars] == expected["root"]
    assert [b.base_a for b in by_id["root"].bars] == [1.0, 2.0, 3.0]
    assert by_id["leaf"].members[0].grid == ("L1", "L3")
    assert len(by_id["leaf"].members[0].held) == len(running)
    assert by_id["leaf"].last_allocation == AT
    assert by_id["root"].last_allocation == AT  # the newest below it


@pytest.mark.parametrize(
    ("phases", "expected"), [(1, [0.0, 16.0, 0.0]), (3, [16.0] * 3), (None, [16.0] * 3)]
)
def test_a_car_on_fewer_phases_loads_only_those(phases: int | None, expected: list[float]) -> None:
    """An allocation counted on one phase of a three-phase STR member loads grid L2 alone
    (the charger's L1); without a phase count it loads every phase the member is wired for."""
    rows = [_circuit("c", None, 32)]
    members = [
        CircuitMember(
            charge_point_id="A", connector_id=0, circuit_id="c", phase_rotation="STR", phases=3
        )
    ]
    allocation = _allocation("A", 1, "c", 16)
    allocation.phases = phases
    [view] = circuit_views(rows, members, [allocation], running={("A", 1)}, last={})
    assert [b.allocated_a for b in view.bars] == expected
    assert view.members[0].held[0].phases == phases


def test_a_bar_over_its_limit_is_full_and_marked() -> None:
    """Base load and allocation share the bar's width; past the limit the bar is full."""
    rows = [_circuit("c", None, 10, [4, 0, 0])]
    members = [CircuitMember(charge_point_id="A", connector_id=1, circuit_id="c", phases=1)]
    [view] = circuit_views(
        rows, members, [_allocation("A", 1, "c", 8)], running={("A", 1)}, last={}
    )
    assert view.last_allocation is None
    l1 = view.bars[0]
    assert (l1.base_percent, l1.allocated_percent, l1.over) == (40.0, 60.0, True)
    assert (view.bars[1].allocated_percent, view.bars[1].over) == (0.0, False)


async def test_last_allocation_times_are_the_newest_change_per_circuit(database_url: str) -> None:
    """One query gives each circuit the time of its newest history row (by id, as the
    history lists them); a circuit without history is absent."""
    earlier, later = AT.replace(hour=8), AT.replace(hour=9)

    def change(circuit_id: str, at: datetime) -> CircuitAllocationChange:
        return CircuitAllocationChange(
            circuit_id=circuit_id,
            charge_point_id="A",
            connector_id=1,
            limit_a=6.0,
            reason="cap",
            at=at,
        )

    async with writing(Database(database_url)) as db:

        async def add(session: AsyncSession) -> None:
            for row in (change("a", earlier), change("b", later), change("a", later)):
                session.add(row)
                await session.flush()

        await db.writer.submit(add)
        found = await db.read(circuits.last_allocation_times)
    assert found == {"a": later, "b": later}
