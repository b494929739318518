"""GET /metrics: Prometheus text after a real session, low cardinality, open on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.metrics import Metrics
from tests.sessions import RFID, START, STOP, meter
from tests.support import MS, CallErrorReceived, RunningCsms, new_identity

GRAFANA = Path(__file__).parents[2] / "docs" / "grafana" / "csms.json"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (the parser checks the text)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(csms: RunningCsms) -> str:
    root = csms.api_url.removesuffix("/api/v1")
    async with httpx.AsyncClient(base_url=root, timeout=10_000 * MS) as client:
        answer = await client.get("/metrics")  # no credential: loopback is open by default
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


async def answer_next_call(charger: Any, payload: dict[str, Any]) -> None:
    frame = await charger.recv_frame()
    assert frame[0] == 2
    await charger.send_raw(f'[3, "{frame[1]}", {{"status": "{payload["status"]}"}}]')


async def test_a_session_shows_in_counters_and_histograms(csms: RunningCsms) -> None:
    """After boot, a session, a command and a refusal, each metric has the expected value."""
    published = 0
    all_published = asyncio.Event()

    def delivered(count: int) -> None:
        nonlocal published
        published += count
        if published >= 8:
            all_published.set()

    csms.app.relay.listeners.append(delivered)
    identity = new_identity()
    async with csms.api() as api:
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        await api.put(
            "/charge-points/LOCKED-1", json={"securityProfile": 1, "password": "0123456789abcdef"}
        )
    without_password = f"{csms.ocpp_url}/LOCKED-1"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(without_password, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401
    async with csms.charger(identity) as charger:
        started = await charger.call("StartTransaction", START)
        tx = started["transactionId"]
        await charger.call("MeterValues", meter(tx, 2000, "2026-03-01T10:30:00Z"))
        await charger.call("MeterValues", meter(tx, 5000, "2026-03-01T11:00:00Z"))
        await charger.call("StopTransaction", {**STOP, "transactionId": tx})
        with pytest.raises(CallErrorReceived) as unknown:
            await charger.call("FlyToTheMoon", {})
        assert unknown.value.code == "NotImplemented"
        async with csms.api() as api:
            command = asyncio.create_task(
                api.post(f"/charge-points/{identity}/commands/Reset", json={"type": "Soft"})
            )
            await answer_next_call(charger, {"status": "Accepted"})
            assert (await command).status_code == 200
        async with asyncio.timeout(10_000 * MS):
            await all_published.wait()
        found = samples(await scrape(csms))
        text = await scrape(csms)
    assert identity not in text  # no label per charger
    for action, count in (
        ("BootNotification", 1),
        ("StartTransaction", 1),
        ("MeterValues", 2),
        ("StopTransaction", 1),
    ):
        assert value(found, "csms_ocpp_messages_total", action=action, outcome="ok") == count
        assert value(found, "csms_ocpp_handler_seconds_count", action=action) == count
    assert value(found, "csms_ocpp_messages_total", action="unknown", outcome="NotImplemented") == 1
    assert value(found, "csms_commands_total", action="Reset", outcome="ok") == 1
    assert value(found, "csms_command_seconds_count", action="Reset") == 1
    reason = "security profile 1 needs a password"
    assert value(found, "csms_security_refusals_total", reason=reason) == 1
    assert value(found, "csms_connected_chargers") == 1
    assert value(found, "csms_db_commit_seconds_count") > 0
    assert value(found, "csms_db_batch_jobs_sum") >= value(found, "csms_db_batch_jobs_count")
    events = value(found, "csms_events_published_total")
    assert events >= 8
    assert value(found, "csms_event_relay_lag_seconds_count") == events
    assert value(found, "csms_mqtt_publish_seconds_count") >= events
    # Read from the outbox at scrape time: whatever the relay has not yet had acknowledged.
    assert ("csms_outbox_backlog_events", ()) in found
    assert ("csms_outbox_oldest_age_seconds", ()) in found


def test_the_grafana_dashboard_uses_only_exported_metrics() -> None:
    """docs/grafana/csms.json queries metrics that csms exports, by their exposed names."""
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bcsms_\w+", target["expr"])
    }
    exported = set()
    for family in text_string_to_metric_families(Metrics().render().decode()):
        exported.add(family.name)
        exported.update(
            f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")
        )
    assert queried
    assert queried <= exported, queried - exported


def test_call_durations_fall_in_cumulative_buckets_whose_bound_they_reach() -> None:
    """csms_ocpp_handler_seconds is kept outside prometheus_client (no lock per CALL), and
    reads as its Histogram would: a value on a bound counts in that bucket, buckets are
    cumulative, +Inf is the count, and the sum adds up; CALLs without a duration count
    only in csms_ocpp_messages_total."""
    metrics = Metrics()
    for seconds in (0.0005, 0.0007, 2.0, 100.0):
        metrics.ocpp_message("Heartbeat", "ok", seconds)
    metrics.ocpp_message("FooBar", "NotImplemented", None)
    found = samples(metrics.render().decode())

    def bucket(le: str) -> float:
        return value(found, "csms_ocpp_handler_seconds_bucket", action="Heartbeat", le=le)

    assert (bucket("0.0005"), bucket("0.001"), bucket("2.5"), bucket("30.0")) == (1, 2, 3, 3)
    assert bucket("+Inf") == value(found, "csms_ocpp_handler_seconds_count", action="Heartbeat")
    assert bucket("+Inf") == 4
    total = value(found, "csms_ocpp_handler_seconds_sum", action="Heartbeat")
    assert total == pytest.approx(102.0012)
    assert value(found, "csms_ocpp_messages_total", action="Heartbeat", outcome="ok") == 4
    assert value(found, "csms_ocpp_messages_total", action="FooBar", outcome="NotImplemented") == 1
    assert ("csms_ocpp_handler_seconds_count", (("action", "FooBar"),)) not in found
