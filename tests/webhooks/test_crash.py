"""SIGKILL in the middle of a webhook backlog: after the restart every event arrives."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import uuid
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.e2e.test_process import CSMS, _wait_for_event, env_for
from tests.support import MS, RawCharger
from tests.webhooks.receiver import HANG, serving

EVENTS = 120


async def test_sigkill_during_a_backlog_loses_no_delivery(tmp_path: Path) -> None:
    """Killed with deliveries in flight and a backlog behind them, csms delivers every
    event after the restart, in order; repeats carry the same webhook-id and body."""
    env = env_for(
        tmp_path,
        CSMS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true",
        CSMS_WEBHOOKS__RETRY_SCHEDULE=f"{50 * MS}",
        CSMS_MQTT__TOPIC_PREFIX=f"csms-test-{uuid.uuid4().hex[:12]}",
    )
    async with serving() as receiver:
        # The first 40 deliveries are taken, then the receiver stops answering.
        receiver.answer("/crash", *[200] * 40, *[HANG] * EVENTS)
        first = await _start(env)
        try:
            ready = await _wait_for_event(first.stderr, "csms_ready")  # type: ignore[arg-type]
            await _subscribe(ready, f"{receiver.url}/crash")
            await _meter_values(ready, EVENTS)
            await receiver.until(41, path="/crash")
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        receiver.plans["/crash"].clear()  # answering again, as after an outage
        second = await _start(env)
        try:
            await _wait_for_event(second.stderr, "csms_ready")  # type: ignore[arg-type]
            arrived = await receiver.until_distinct(EVENTS, path="/crash")
        finally:
            second.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10_000 * MS):
                await second.wait()
    assert arrived == _outbox_ids(tmp_path / "csms.db")
    bodies: dict[str, bytes] = {}
    for delivery in receiver.at("/crash"):
        assert delivery.webhook_id == delivery.event["id"]
        assert bodies.setdefault(delivery.webhook_id, delivery.body) == delivery.body
    assert len(receiver.at("/crash")) > EVENTS  # some were sent twice: at least once


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CSMS, "serve", env=env, stderr=asyncio.subprocess.PIPE
    )


async def _subscribe(ready: dict[str, object], url: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ready['api_port']}/api/v1") as api:
        answer = await api.put("/webhooks/crash", json={"url": url, "eventTypes": ["meter.values"]})
        assert answer.status_code == 201, answer.text


async def _meter_values(ready: dict[str, object], count: int) -> None:
    url = f"ws://127.0.0.1:{ready['ocpp_port']}/ocpp/CP-KILL"
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS) as ws:  # type: ignore[list-item]
        charger = RawCharger(ws)
        await charger.boot()
        for n in range(count):
            sampled = [{"value": str(1000 + n), "measurand": "Energy.Active.Import.Register"}]
            at = f"2026-03-01T10:{n // 60:02d}:{n % 60:02d}Z"
            await charger.call(
                "MeterValues",
                {"connectorId": 1, "meterValue": [{"timestamp": at, "sampledValue": sampled}]},
            )


def _outbox_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT event_id FROM outbox_events WHERE type = 'meter.values' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]
