"""Circuits and charging profiles through the API, with simulated chargers answering."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from csms.config import BalancingSettings
from csms.flows.circuits import BalancerSnapshot, recounted
from csms.store.tables import CircuitAllocation
from simulators import Charger
from tests.support import MS, RunningCsms, mqtt_of, running_csms, settings_for, subscribed

WAIT = 10_000 * MS
FAST = BalancingSettings(coalesce=0.05, increase_hold=0.001, resume_hold=0.001, tick=3600)


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms whose balancer coalesces for 50 ms and has no increase hysteresis."""
    settings = dataclasses.replace(settings_for(database_url), balancing=FAST)
    async with running_csms(settings) as running:
        yield running


def circuit(*members: dict[str, Any], limits: float = 32, **extra: Any) -> dict[str, Any]:
    return {"name": "car park", "phaseLimitsA": [limits] * 3, "members": list(members), **extra}


def profile(profile_id: int, purpose: str, limit: float, **extra: Any) -> dict[str, Any]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": extra.pop("stackLevel", 2),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": extra.pop("unit", "A"),
            "startSchedule": "2026-01-01T00:00:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
        **extra,
    }


async def booted(csms: RunningCsms, identity: str, **config: Any) -> Charger:
    cp = Charger(url=csms.ocpp_url, identity=identity, connectors=2, config=config)
    await cp.connect(timeout=WAIT)
    assert (await cp.boot(timeout=WAIT))["status"] == "Accepted"
    for connector in (0, 1, 2):
        await cp.status(connector, "Available")
    return cp


@pytest.mark.postgres
async def test_circuit_tree_edits_and_refusals(csms: RunningCsms) -> None:
    """PUT creates then replaces; bad trees, unknown chargers, clashes and parents with
    children are refused with the status that names the problem."""
    cp = await booted(csms, "CIR-A")
    try:
        async with csms.api() as api:
            created = await api.put("/circuits/site", json=circuit(limits=63))
            assert created.status_code == 201, created.text
            board = circuit({"chargePointId": "CIR-A", "phaseRotation": "STR"}, parentId="site")
            assert (await api.put("/circuits/board", json=board)).status_code == 201
            again = await api.put("/circuits/board", json=board)
            assert again.status_code == 200
            body = again.json()
            assert body["parentId"] == "site"
            assert body["members"][0] == {
                "chargePointId": "CIR-A",
                "connectorId": None,
                "phaseRotation": "STR",
                "phases": 3,
                "priority": 0,
                "minCurrentA": 6.0,
                "maxCurrentA": 32.0,
            }
            listed = (await api.get("/circuits")).json()
            assert [c["id"] for c in listed["items"]] == ["board", "site"]

            cycle = await api.put("/circuits/site", json=circuit(parentId="board"))
            assert cycle.status_code == 422
            assert "ancestor" in cycle.json()["detail"]
            orphan = await api.put("/circuits/x", json=circuit(parentId="nowhere"))
            assert orphan.status_code == 422
            unknown = await api.put("/circuits/x", json=circuit({"chargePointId": "NOPE"}))
            assert unknown.status_code == 404
            clash = await api.put(
                "/circuits/x", json=circuit({"chargePointId": "CIR-A", "connectorId": 1})
            )
            assert clash.status_code == 409
            assert "board" in clash.json()["detail"]
            bounds = circuit({"chargePointId": "CIR-A", "minCurrentA": 20, "maxCurrentA": 10})
            assert (await api.put("/circuits/board", json=bounds)).status_code == 422
            assert (await api.put("/circuits/x", json={"name": "x"})).status_code == 422

            assert (await api.delete("/circuits/site")).status_code == 409
            assert (await api.delete("/circuits/board")).status_code == 204
            assert (await api.get("/circuits/board")).status_code == 404
            assert (await api.delete("/circuits/board")).status_code == 404
    finally:
        await cp.close()


@pytest.mark.postgres
async def test_every_edit_publishes_circuit_updated(csms: RunningCsms) -> None:
    """Creating, replacing and deleting a circuit each publish `circuit.updated` under the
    circuit's id, with the circuit as stored (null once deleted); a refused edit publishes
    nothing."""
    cp = await booted(csms, "CIR-U")
    mqtt = mqtt_of(csms)
    try:
        async with csms.api() as api, subscribed(mqtt.url, mqtt.topic_prefix) as events:
            assert (await api.put("/circuits/site", json=circuit(limits=63))).status_code == 201
            member = {"chargePointId": "CIR-U", "connectorId": 2, "phases": 1, "priority": 3}
            board = circuit(member, parentId="site", baseLoadA=[1, 2, 3])
            assert (await api.put("/circuits/board", json=board)).status_code == 201
            board["name"] = "renamed"
            assert (await api.put("/circuits/board", json=board)).status_code == 200
            refused = circuit({"chargePointId": "CIR-U", "connectorId": 2})
            assert (await api.put("/circuits/x", json=refused)).status_code == 409
            assert (await api.delete("/circuits/board")).status_code == 204
            updated = await events.until(4, of_type="circuit.updated")
            assert [(e["subject"], e["data"]["deleted"]) for e in updated] == [
                ("site", False),
                ("board", False),
                ("board", False),
                ("board", True),
            ]
            assert updated[2]["data"] == {
                "circuitId": "board",
                "deleted": False,
                "circuit": {
                    "id": "board",
                    "name": "renamed",
                    "parentId": "site",
                    "phaseLimitsA": [32.0, 32.0, 32.0],
                    "baseLoadA": [1.0, 2.0, 3.0],
                    "safetyMarginA": 0.5,
                    "members": [
                        {
                            "chargePointId": "CIR-U",
                            "connectorId": 2,
                            "phaseRotation": "RST",
                            "phases": 1,
                            "priority": 3,
                            "minCurrentA": 6.0,
                            "maxCurrentA": 32.0,
                        }
                    ],
                },
            }
            # The event carries what GET answers, less the timestamps.
            stored = (await api.get("/circuits/site")).json()
            assert updated[0]["data"]["circuit"] == {
                k: v for k, v in stored.items() if k not in ("createdAt", "updatedAt")
            }
            assert updated[3]["data"] == {"circuitId": "board", "deleted": True, "circuit": None}
            assert updated[3]["source"] == "/charge-points/board"
    finally:
        await cp.close()


async def test_member_gets_the_safe_default_and_a_leased_tx_profile(csms: RunningCsms) -> None:
    """A member charger gets the safe TxDefaultProfile; a session on it gets a TxProfile with
    its limit now and the safe share after the lease, shown in the allocation and its
    history."""
    cp = await booted(csms, "CIR-B")
    mqtt = mqtt_of(csms)
    try:
        async with csms.api() as api, subscribed(mqtt.url, mqtt.topic_prefix) as events:
            assert (await api.put("/id-tags/TAG-B", json={"status": "Accepted"})).is_success
            member = {"chargePointId": "CIR-B", "maxCurrentA": 16}
            assert (await api.put("/circuits/solo", json=circuit(member))).status_code == 201
            safe = await cp.next_incoming("SetChargingProfile", timeout=WAIT)
            assert safe.payload["connectorId"] == 0
            default = safe.payload["csChargingProfiles"]
            assert default["chargingProfilePurpose"] == "TxDefaultProfile"
            # 32 A less the 0.5 A margin over the charger's 2 connectors, within its 16 A feed.
            assert default["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 8.0
            assert safe.response == {"status": "Accepted"}

            cp.plug_in(1, "TAG-B")
            tx = await cp.next_incoming("SetChargingProfile", timeout=WAIT)
            body = tx.payload["csChargingProfiles"]
            assert body["chargingProfilePurpose"] == "TxProfile"
            assert tx.payload["connectorId"] == 1
            periods = body["chargingSchedule"]["chargingSchedulePeriod"]
            assert periods[0] == {"startPeriod": 0, "limit": 16.0}
            assert periods[1]["limit"] == 8.0
            assert periods[1]["startPeriod"] > 0
            assert tx.response == {"status": "Accepted"}

            [event] = await events.until(1, of_type="circuit.allocation")
            assert event["data"] == {
                "circuitId": "solo",
                "connectorId": 1,
                "limitA": 16.0,
                "previousA": None,
                "phases": 3,
                "transactionId": body["transactionId"],
                "reason": "cap",
            }
            assert event["source"] == "/charge-points/CIR-B"
            [row] = (await api.get("/circuits/solo/allocation")).json()["connectors"]
            assert (row["chargePointId"], row["connectorId"], row["limitA"]) == ("CIR-B", 1, 16.0)
            assert row["status"] == "accepted"
            assert row["reason"] == "cap"
            assert row["phases"] == 3
            kept = (await api.get("/charge-points/CIR-B/charging-profiles")).json()["items"]
            assert {(p["chargingProfileId"], p["source"]) for p in kept} == {
                (9100, "balancer"),
                (9001, "balancer"),
            }
            history = (await api.get("/circuits/solo/allocation/history")).json()
            assert history["items"][0]["limitA"] == 16.0
            assert history["items"][0]["phases"] == 3
    finally:
        await cp.close()


async def test_profiles_api_checks_the_chargers_limits(csms: RunningCsms) -> None:
    """Create, list, composite schedule and clear; a profile beyond what the charger reported
    is refused with a 422 that names the limit, and the balancer's ids are reserved."""
    cp = await booted(csms, "PRO-1")
    try:
        async with csms.api() as api:
            got = await api.post("/charge-points/PRO-1/commands/GetConfiguration", json={})
            assert got.status_code == 200
            path = "/charge-points/PRO-1/charging-profiles"
            deep = {
                "connectorId": 0,
                "csChargingProfiles": profile(5, "ChargePointMaxProfile", 20, stackLevel=11),
            }
            refused = await api.post(path, json=deep)
            assert refused.status_code == 422
            assert "ChargeProfileMaxStackLevel 10" in refused.json()["detail"]
            reserved = {
                "connectorId": 0,
                "csChargingProfiles": profile(9001, "ChargePointMaxProfile", 20),
            }
            refused = await api.post(path, json=reserved)
            assert refused.status_code == 422
            assert "reserved" in refused.json()["detail"]
            not_first = profile(6, "TxDefaultProfile", 10)
            not_first["chargingSchedule"]["chargingSchedulePeriod"][0]["startPeriod"] = 60
            refused = await api.post(path, json={"connectorId": 1, "csChargingProfiles": not_first})
            assert refused.status_code == 422

            cap = {"connectorId": 0, "csChargingProfiles": profile(5, "ChargePointMaxProfile", 20)}
            sent = await api.post(path, json=cap)
            assert sent.status_code == 200, sent.text
            assert sent.json()["response"] == {"status": "Accepted"}
            default = {"connectorId": 1, "csChargingProfiles": profile(7, "TxDefaultProfile", 12)}
            assert (await api.post(path, json=default)).json()["response"]["status"] == "Accepted"
            listed = (await api.get(path)).json()
            assert sorted(p["chargingProfileId"] for p in listed["items"]) == [5, 7]
            assert {p["source"] for p in listed["items"]} == {"api"}

            ours = await api.get(
                "/charge-points/PRO-1/composite-schedule",
                params={"connectorId": 1, "duration": 3600},
            )
            assert ours.status_code == 200
            schedule = ours.json()["chargingSchedule"]
            assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 12.0}]
            theirs = await api.post(
                "/charge-points/PRO-1/commands/GetCompositeSchedule",
                json={"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
            )
            answer = theirs.json()["response"]["chargingSchedule"]["chargingSchedulePeriod"]
            assert [p["limit"] for p in answer] == [12.0]
            whole = await api.get(
                "/charge-points/PRO-1/composite-schedule",
                params={"connectorId": 0, "duration": 60, "chargingRateUnit": "W"},
            )
            assert whole.json()["chargingSchedule"]["chargingSchedulePeriod"] == [
                {"startPeriod": 0, "limit": 13800.0}
            ]

            cleared = await api.delete(path, params={"id": 7})
            assert cleared.json()["response"] == {"status": "Accepted"}
            listed = (await api.get(path)).json()
            assert [p["chargingProfileId"] for p in listed["items"]] == [5]
    finally:
        await cp.close()


def test_recounted_keeps_a_limit_on_the_phases_a_car_uses() -> None:
    """An accepted limit whose session is now counted on one phase is kept with that phase
    count and announced with `limitA` unchanged; one about to be sent, one not confirmed
    and one already counted right are left alone."""
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def row(cp: str, status: str = "accepted", phases: int | None = 3) -> CircuitAllocation:
        return CircuitAllocation(
            charge_point_id=cp,
            connector_id=1,
            circuit_id="park",
            transaction_id=7,
            limit_a=16.0,
            phases=phases,
            reason="cap",
            status=status,
            changed_at=at,
        )

    applied = {
        ("ONE", 1): row("ONE"),
        ("OLD", 1): row("OLD", phases=None),
        ("SENT", 1): row("SENT"),
        ("UNKNOWN", 1): row("UNKNOWN", status="unknown"),
        ("SAME", 1): row("SAME", phases=1),
    }
    snap = BalancerSnapshot(
        circuits={},
        members={},
        sessions=[],
        caps={},
        strategy={},
        violating=set(),
        applied=applied,
        connectors={},
        probed=set(),
        defaults={},
        phases=dict.fromkeys(applied, 1),
    )
    later = at.replace(hour=1)
    found = recounted(snap, sending={("SENT", 1)}, now=later)
    # The limit's own time stays: hysteresis and the overdraw grace count from it.
    assert [(kept.charge_point_id, kept.phases, kept.changed_at) for kept, _ in found] == [
        ("ONE", 1, at),
        ("OLD", 1, at),
    ]
    event = found[0][1]
    assert (event.charge_point_id, event.type, event.time) == ("ONE", "circuit.allocation", later)
    assert event.data == {
        "circuitId": "park",
        "connectorId": 1,
        "limitA": 16.0,
        "previousA": 16.0,
        "phases": 1,
        "transactionId": 7,
        "reason": "cap",
    }
