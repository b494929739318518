"""Unknown chargers and the operator's decision: ocpp.unknown_chargers, Pending, Rejected
(OCPP 1.6 §4.2; docs/ocpp.md, "Unknown chargers")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.ocpp16.test_handshake import refused_status
from tests.strict_charger import StrictCharger
from tests.support import (
    CallErrorReceived,
    RunningCsms,
    disconnected,
    mqtt_of,
    new_identity,
    running_csms,
    settings_for,
    subscribed,
)

AUTHORIZATION_KEY = "00112233445566778899aabbccddeeff01234567"
STATUS = {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
BOOT = {"chargePointVendor": "TestVendor", "chargePointModel": "T1"}


@pytest.fixture
async def pending_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms that holds unknown chargers Pending until an operator decides."""
    settings = settings_for(database_url, unknown_chargers="pending", pending_interval=60)
    async with running_csms(settings) as running:
        yield running


@asynccontextmanager
async def answering(csms: RunningCsms, identity: str) -> AsyncIterator[StrictCharger]:
    """A charger that boots, then answers csms's CALLs in the background."""
    async with csms.charger(identity, boot=False) as raw:
        charger = StrictCharger(raw=raw)
        task = asyncio.create_task(charger.serve())
        try:
            yield charger
        finally:
            task.cancel()


async def listed(csms: RunningCsms, status: str) -> list[str]:
    async with csms.api() as api:
        body = (await api.get("/charge-points", params={"status": status})).json()
    return [item["id"] for item in body["items"]]


async def command(csms: RunningCsms, identity: str, action: str, payload: dict[str, Any]) -> Any:
    async with csms.api() as api:
        return await api.post(f"/charge-points/{identity}/commands/{action}", json=payload)


@pytest.mark.postgres
async def test_an_unknown_charger_is_pending_until_an_operator_accepts_it(
    pending_csms: RunningCsms,
) -> None:
    """BootNotification is answered Pending with a retry interval, the charger is listed
    under status=pending, may send nothing else, and boots Accepted once accepted."""
    csms, identity = pending_csms, new_identity("NEW")
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with csms.charger(identity, boot=False) as charger:
            answer = await charger.boot()
            assert answer["status"] == "Pending"
            # OCPP 1.6 §4.2: the least wait before the next boot, spread over its last fifth.
            assert 48 <= answer["interval"] <= 60
            assert await listed(csms, "pending") == [identity]
            assert await listed(csms, "accepted") == []
            with pytest.raises(CallErrorReceived) as refused:
                await charger.call("StatusNotification", STATUS)
            assert refused.value.code == "SecurityError"
            async with csms.api() as api:
                accepted = await api.post(f"/charge-points/{identity}/accept")
            assert accepted.status_code == 200
            assert accepted.json()["registrationStatus"] == "accepted"
            again = await charger.boot()
            assert (again["status"], again["interval"]) == ("Accepted", 300)
            assert await charger.call("StatusNotification", STATUS) == {}
        booted = await events.until(2, of_type="chargepoint.booted")
    assert [event["data"]["bootStatus"] for event in booted] == ["Pending", "Accepted"]
    assert await listed(csms, "pending") == []


async def test_a_pending_charger_gets_configuration_but_no_remote_start(
    pending_csms: RunningCsms,
) -> None:
    """While Pending, csms may read and change configuration, the AuthorizationKey included
    (A00.FR.806), and trigger messages; RemoteStartTransaction is refused with 409."""
    csms, identity = pending_csms, new_identity("PEND")
    async with answering(csms, identity) as charger:
        assert (await charger.call("BootNotification", BOOT))["status"] == "Pending"
        read = await command(csms, identity, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert read.status_code == 200
        renew = {"key": "AuthorizationKey", "value": AUTHORIZATION_KEY}
        assert (await command(csms, identity, "ChangeConfiguration", renew)).status_code == 200
        start = await command(csms, identity, "RemoteStartTransaction", {"idTag": "CARD-1"})
        assert start.status_code == 409
        assert "pending" in start.json()["detail"]
        trigger = {"requestedMessage": "StatusNotification", "connectorId": 1}
        assert (await command(csms, identity, "TriggerMessage", trigger)).status_code == 200
        # What csms triggered, a Pending charger may send (OCPP 1.6 §4.2).
        assert await charger.call("StatusNotification", STATUS) == {}
    assert [action for action, _ in charger.received] == [
        "GetConfiguration",
        "ChangeConfiguration",
        "TriggerMessage",
    ]
    async with csms.api() as api:
        body = (await api.get(f"/charge-points/{identity}")).json()
    assert body["passwordSet"] is True
    assert [c["status"] for c in body["connectors"]] == ["Available"]


async def test_a_rejected_charger_is_closed_and_answered_rejected(
    pending_csms: RunningCsms,
) -> None:
    """Rejecting closes the live socket; the charger's next boot is Rejected, anything
    else SecurityError, and csms sends it nothing."""
    csms, identity = pending_csms, new_identity("BAD")
    async with csms.charger(identity, boot=False) as charger:
        assert (await charger.boot())["status"] == "Pending"
        async with csms.api() as api:
            rejected = await api.post(f"/charge-points/{identity}/reject")
        assert rejected.json()["registrationStatus"] == "rejected"
        await disconnected(csms, identity)
    async with csms.charger(identity, boot=False) as charger:
        answer = await charger.boot()
        assert answer["status"] == "Rejected"
        assert 48 <= answer["interval"] <= 60
        with pytest.raises(CallErrorReceived) as refused:
            await charger.call("Heartbeat", {})
        assert refused.value.code == "SecurityError"
        read = await command(csms, identity, "GetConfiguration", {})
        assert read.status_code == 409
        assert "rejected" in read.json()["detail"]
    assert await listed(csms, "rejected") == [identity]


async def test_each_decision_is_published_once_as_registration_status(
    pending_csms: RunningCsms,
) -> None:
    """Accepting and rejecting a charger publish `chargepoint.registration_status` with the
    status it had before and who decided; repeating a decision publishes nothing."""
    csms, identity = pending_csms, new_identity("DECIDE")
    mqtt = mqtt_of(csms)
    async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
        async with csms.charger(identity, boot=False) as charger:
            assert (await charger.boot())["status"] == "Pending"
        async with csms.api() as api:
            for decision in ("accept", "accept", "reject"):
                answer = await api.post(f"/charge-points/{identity}/{decision}")
                assert answer.status_code == 200, answer.text
            assert (await api.post(f"/charge-points/{new_identity()}/accept")).status_code == 404
        decided = await events.until(2, of_type="chargepoint.registration_status")
    assert [event["data"] for event in decided] == [
        {"status": "accepted", "previousStatus": "pending", "decidedBy": "api.token"},
        {"status": "rejected", "previousStatus": "accepted", "decidedBy": "api.token"},
    ]
    assert {event["source"] for event in decided} == {f"/charge-points/{identity}"}


async def test_unknown_policies_and_their_deprecated_alias(database_url: str) -> None:
    """reject answers an unknown identity 404; accept lets it boot Accepted; a known charger
    registered through the API is accepted under pending too."""
    async with running_csms(settings_for(database_url, unknown_chargers="reject")) as csms:
        assert await refused_status(f"{csms.ocpp_url}/{new_identity()}") == 404
    async with running_csms(settings_for(database_url, unknown_chargers="accept")) as csms:
        async with csms.charger(new_identity(), boot=False) as charger:
            assert (await charger.boot())["status"] == "Accepted"
    settings = settings_for(database_url, unknown_chargers="pending")
    async with running_csms(settings) as csms:
        identity = new_identity("KNOWN")
        async with csms.api() as api:
            assert (await api.put(f"/charge-points/{identity}", json={})).status_code == 201
        async with csms.charger(identity, boot=False) as charger:
            assert (await charger.boot())["status"] == "Accepted"


async def test_accept_and_reject_of_an_unknown_charger_are_404(
    pending_csms: RunningCsms,
) -> None:
    """Deciding about a charger csms does not know is a 404, and creates nothing."""
    async with pending_csms.api() as api:
        for decision in ("accept", "reject"):
            response = await api.post(f"/charge-points/NOBODY/{decision}")
            assert response.status_code == 404
        assert (await api.get("/charge-points")).json()["total"] == 0
