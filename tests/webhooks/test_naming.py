"""The platform's notification names on events and webhooks: network status, session
status and reason (docs/events.md, "Naming")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from csms.core.notifications import session_status, stop_reason
from tests.sessions import RFID, START, STOP, meter
from tests.strict_charger import strict_charger
from tests.support import RunningCsms, running_csms
from tests.webhooks.helpers import caught_up, subscribe, webhook_settings
from tests.webhooks.receiver import Receiver, serving


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[RunningCsms]:
    async with running_csms(webhook_settings(database_url)) as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as running:
        yield running


async def test_a_registered_charger_is_never_connected_until_it_connects(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """Registering a charger through the API publishes never_connected; its first
    connection available, its disconnect temporarily_unavailable."""
    async with hooks.api() as api:
        await subscribe(
            api, "net", f"{receiver.url}/net", event_types=["chargepoint.network_status"]
        )
        assert (await api.put("/charge-points/CP-NEW", json={})).status_code == 201
        assert (await api.put("/charge-points/CP-NEW", json={"name": "x"})).status_code == 200
        async with strict_charger(f"{hooks.ocpp_url}/CP-NEW"):
            pass
        got = await receiver.until(3, path="/net")
        await caught_up(hooks, "net")
    assert [d.event["data"]["status"] for d in receiver.at("/net")] == [
        "never_connected",
        "available",
        "temporarily_unavailable",
    ]
    assert {d.event["source"] for d in got} == {"/charge-points/CP-NEW"}


async def test_session_events_carry_status_and_reason(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """started and updated are active, stopped is finished with the stop's reason; a start
    whose tag was not accepted is failed, not_authorized."""
    async with hooks.api() as api:
        await subscribe(api, "s", f"{receiver.url}/s", event_types=["session.*"])
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        async with strict_charger(f"{hooks.ocpp_url}/CP-S") as cp:
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:45:00Z"))
            stop = {**STOP, "transactionId": tx, "reason": "EVDisconnected"}
            await cp.call("StopTransaction", stop)
            unknown = {**START, "idTag": "UNKNOWN-TAG", "timestamp": "2026-03-01T12:00:00Z"}
            await cp.call("StartTransaction", unknown)
        await receiver.until(4, path="/s")
        await caught_up(hooks, "s")
    named = [
        (d.event["type"], d.event["data"]["status"], d.event["data"]["reason"])
        for d in receiver.at("/s")
    ]
    assert named == [
        ("session.started", "active", None),
        ("session.updated", "active", None),
        ("session.stopped", "finished", "ev_disconnected"),
        ("session.started", "failed", "not_authorized"),
    ]


@pytest.mark.parametrize(
    ("reason", "named"),
    [
        (None, "local"),
        ("Local", "local"),
        ("Remote", "remote"),
        ("EVDisconnected", "ev_disconnected"),
        ("DeAuthorized", "deauthorized"),
        ("Forced", "forced"),
        ("SomethingNew", "other"),
    ],
)
def test_stop_reasons_are_named_in_snake_case(reason: str | None, named: str) -> None:
    """OCPP 1.6 stop reasons become snake_case; an absent one is local (errata §2.6)."""
    assert stop_reason(reason) == named


def test_a_session_is_active_then_finished_or_failed_when_not_authorized() -> None:
    """The status before the stop reason: active, finished, or failed/not_authorized."""
    assert session_status(stopped=False, authorized=True) == ("active", None)
    assert session_status(stopped=True, authorized=True) == ("finished", None)
    assert session_status(stopped=True, authorized=False) == ("failed", "not_authorized")
