"""State after a crash: chargers the killed process had are disconnected on the next start."""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from websockets.asyncio.client import connect

from tests.support import (
    MOSQUITTO_UP,
    MS,
    RawCharger,
    Subscriber,
    free_port,
    running_csms,
    serve_process,
    settings_for,
    subscribed,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


@pytest.mark.skipif(not MOSQUITTO_UP, reason="needs Mosquitto on 127.0.0.1:1883")
async def test_chargers_of_a_killed_process_are_disconnected_at_the_next_start(
    tmp_path: Path,
) -> None:
    """After SIGKILL, a charger that never comes back is disconnected and its EVSEs UNKNOWN."""
    prefix = f"crash-{uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CSMS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(free_port()),
        "CSMS_OCPP__OFFLINE_GRACE": str(200 * MS),
        "CSMS_API__PORT": "0",
        "CSMS_MQTT__URL": "mqtt://127.0.0.1:1883",
        "CSMS_MQTT__TOPIC_PREFIX": prefix,
        "CSMS_MQTT__EMBEDDED": "false",
        "CSMS_LOG__FORMAT": "json",
    }
    url = f"ws://127.0.0.1:{env['CSMS_OCPP__PORT']}/ocpp/CP-CRASH"
    async with subscribed("mqtt://127.0.0.1:1883", prefix) as events:
        first = await serve_process(env)
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS) as ws:  # type: ignore[list-item]
            charger = RawCharger(ws)
            await charger.boot()
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            await charger.call("StatusNotification", status)
            await events.until(1, of_type="evse.status")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        killed = datetime.now().astimezone()
        second = await serve_process(env)
        try:
            (gone,) = await events.until(1, of_type="chargepoint.disconnected")
            await _until_unknown(events)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()
    assert gone["data"] == {"chargePointId": "CP-CRASH", "reason": "csms restarted"}
    # It happened when the charger was last seen, before the kill, not at the restart.
    assert datetime.fromisoformat(gone["time"]) <= killed
    network = _once(events.of("chargepoint.network_status"))
    assert [n["data"]["status"] for n in network] == ["available", "temporarily_unavailable"]
    assert network[1]["time"] == gone["time"]
    statuses = _once(events.of("evse.status"))
    assert [s["data"]["ocpi"]["status"] for s in statuses] == ["AVAILABLE", "UNKNOWN"]
    assert second.returncode == 0


def _once(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without redeliveries (a kill can come between PUBACK and its record)."""
    return list({event["id"]: event for event in events}.values())


async def _until_unknown(events: Subscriber) -> None:
    """Wait until an `evse.status` UNKNOWN has arrived."""
    count = 1
    while True:
        got = await events.until(count, of_type="evse.status")
        if any(event["data"]["ocpi"]["status"] == "UNKNOWN" for event in got):
            return
        count = len(got) + 1


async def test_a_second_outage_goes_unknown_again(database_url: str) -> None:
    """The offline rules start afresh on every connection: the next outage is published too."""
    settings = settings_for(database_url, offline_grace=200 * MS, long_term_offline=400 * MS)
    async with running_csms(settings) as csms:
        mqtt = csms.app.settings.mqtt
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            async with csms.charger("CP-TWICE") as cp:
                await cp.call("StatusNotification", status)
            await events.until(3, of_type="chargepoint.network_status")  # long_term_unavailable
            async with csms.charger("CP-TWICE", boot=False) as cp:
                await cp.call("StatusNotification", status)
            statuses = await events.until(4, of_type="evse.status")
            network = await events.until(6, of_type="chargepoint.network_status")
    assert [s["data"]["ocpi"]["status"] for s in statuses] == [
        "AVAILABLE",
        "UNKNOWN",
        "AVAILABLE",
        "UNKNOWN",
    ]
    assert [n["data"]["status"] for n in network] == [
        "available",
        "temporarily_unavailable",
        "long_term_unavailable",
        "available",
        "temporarily_unavailable",
        "long_term_unavailable",
    ]
