"""Quiet and oversized: chargers that stop talking, and frames over ocpp.max_frame_size."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from structlog.testing import capture_logs
from websockets.exceptions import ConnectionClosed

from tests.support import (
    MS,
    disconnected,
    mqtt_of,
    new_identity,
    running_csms,
    settings_for,
    subscribed,
)

# 2 x 1 s heartbeat interval + 0.2 s grace: a charger silent for 2.2 s is gone.
GRACE = 200 * MS


@pytest.mark.postgres
async def test_a_silent_charger_is_marked_offline_and_its_socket_closed(
    database_url: str,
) -> None:
    """A socket that stays up but carries nothing (no message, no pong) for 2 x heartbeat
    interval + grace is closed (1001), and the charger is published disconnected and
    temporarily_unavailable."""
    settings = settings_for(
        database_url, heartbeat_interval=1, pending_interval=1, heartbeat_grace=GRACE
    )
    async with running_csms(settings) as csms:
        identity = new_identity("QUIET")
        mqtt = mqtt_of(csms)
        async with subscribed(mqtt.url, mqtt.topic_prefix) as events:
            with capture_logs() as logs:
                async with csms.charger(identity) as charger:
                    await disconnected(csms, identity)
                    async with asyncio.timeout(5_000 * MS):
                        await charger.ws.wait_closed()
                    assert charger.ws.close_code == 1001
            (gone,) = await events.until(1, of_type="chargepoint.disconnected")
            statuses = await events.until(2, of_type="chargepoint.network_status")
        assert gone["data"]["reason"] == "silent for 2.2 s"
        assert [e["data"]["status"] for e in statuses] == ["available", "temporarily_unavailable"]
        assert [e["seconds"] for e in logs if e["event"] == "charger_silent"] == [2.2]
        assert csms.app.counters["chargers.silent"] == 1


async def test_a_charger_that_keeps_talking_stays_connected(database_url: str) -> None:
    """Any message resets the silence limit (OCPP 1.6 §4.6): a Heartbeat every interval
    keeps the socket open well past 2 x interval + grace."""
    settings = settings_for(
        database_url, heartbeat_interval=1, pending_interval=1, heartbeat_grace=GRACE
    )
    async with running_csms(settings) as csms:
        identity = new_identity("CHATTY")
        async with csms.charger(identity) as charger:
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(1_000 * MS):
                        await charger.ws.wait_closed()
                assert "currentTime" in await charger.call("Heartbeat", {})
            assert identity in csms.chargers


async def test_pongs_count_as_signs_of_life(database_url: str) -> None:
    """With JSON, pings may stand in for Heartbeats (OCPP-J §5.3): a charger that answers
    csms's pings but sends no OCPP message is not silent."""
    settings = settings_for(
        database_url,
        heartbeat_interval=1,
        pending_interval=1,
        heartbeat_grace=GRACE,
        ping_interval=300 * MS,
    )
    async with running_csms(settings) as csms:
        identity = new_identity("PONG")
        async with csms.charger(identity) as charger:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3_000 * MS):
                    await charger.ws.wait_closed()
            assert identity in csms.chargers
        assert csms.app.counters["chargers.silent"] == 0


async def test_a_frame_over_the_maximum_closes_with_1009(database_url: str) -> None:
    """A frame over ocpp.max_frame_size closes the connection with 1009, logged with the
    reason and counted; frames up to the limit are served."""
    async with running_csms(settings_for(database_url, max_frame_size=4096)) as csms:
        identity = new_identity("BIG")
        with capture_logs() as logs:
            async with csms.charger(identity) as charger:
                vendor = {"vendorId": "com.acme", "data": "x" * 3000}
                assert (await charger.call("DataTransfer", vendor))["status"] == "UnknownVendorId"
                too_big = orjson.dumps([2, "big-1", "DataTransfer", {**vendor, "data": "x" * 5000}])
                await charger.send_raw(too_big.decode())
                with pytest.raises(ConnectionClosed) as closed:
                    await charger.recv_frame()
            await disconnected(csms, identity)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        (entry,) = [e for e in logs if e["event"] == "frame_too_big"]
        assert entry["code"] == 1009
        assert "4096" in entry["reason"]
        assert csms.app.counters["frames.too_big"] == 1
