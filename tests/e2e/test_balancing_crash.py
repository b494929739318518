"""csms killed with SIGKILL in the middle of balanced sessions: each decays to the circuit's
safe share when its lease ends, and a session started meanwhile runs at the safe default."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from simulators import Charger
from simulators.model import EvSpec, SessionState
from tests.support import MS, free_port, mqtt_settings, serve_process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

WAIT = 20_000 * MS
LEASE = 600
CAR = EvSpec(capacity_wh=200_000.0, max_power_w=22_080.0, soc_start=0.1)
PER_AMP = 230.0 * 3


def limit_at(cp: Charger, moment: float) -> float:
    """The limit (A per phase) the charger's own profiles give its session at `moment`."""
    session = cp.core.connectors[1].session
    assert session is not None
    watts, _ = cp.core.profiles.limit_w(1, moment, session.started_at, True, phases=3)
    return watts / PER_AMP


def charging(cp: Charger) -> bool:
    session = cp.core.connectors[1].session
    return session is not None and session.state is SessionState.CHARGING


async def test_sessions_decay_to_the_safe_share_after_sigkill(tmp_path: Path) -> None:
    """Two sessions at 15.7 A each on a 32 A circuit of three chargers; csms is killed: they
    keep 15.7 A until the lease ends, then fall to the 10.5 A safe share, so with a third
    car started meanwhile (at the safe default) the circuit is under 32 A again once the
    lease is over. Until then it is not: the lease is what bounds that window. After the
    restart a charger still away counts at its last applied limit."""
    mqtt = mqtt_settings()
    api_port, ocpp_port = free_port(), free_port()
    env = {
        **os.environ,
        "CSMS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "CSMS_OCPP__HOST": "127.0.0.1",
        "CSMS_OCPP__PORT": str(ocpp_port),
        "CSMS_API__PORT": str(api_port),
        "CSMS_API__TOKEN": "",
        "CSMS_MQTT__URL": mqtt.url,
        "CSMS_MQTT__TOPIC_PREFIX": mqtt.topic_prefix,
        "CSMS_LOG__FORMAT": "json",
        "CSMS_BALANCING__COALESCE": "0.05",
        "CSMS_BALANCING__INCREASE_HOLD": "0.001",
        "CSMS_BALANCING__RESUME_HOLD": "0.001",
        "CSMS_BALANCING__LEASE": str(LEASE),
        "CSMS_BALANCING__RENEW_BEFORE": "60",
    }
    process = await serve_process(env)
    chargers = [
        Charger(url=f"ws://127.0.0.1:{ocpp_port}/ocpp", identity=f"KILL-{n}", connectors=1)
        for n in range(3)
    ]
    try:
        for cp in chargers:
            await cp.connect(timeout=WAIT)
            assert (await cp.boot(timeout=WAIT))["status"] == "Accepted"
            await cp.status(1, "Available")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=WAIT
        ) as api:
            for n in range(3):
                await api.put(f"/id-tags/TAG-{n}", json={"status": "Accepted"})
            members = [{"chargePointId": cp.identity} for cp in chargers]
            body = {"name": "site", "phaseLimitsA": [32, 32, 32], "members": members}
            assert (await api.put("/circuits/site", json=body)).status_code == 201
        for cp in chargers:
            await cp.wait_for(lambda cp=cp: len(cp.core.profiles) >= 1, timeout=WAIT)
        first, second, third = chargers
        for n, cp in enumerate((first, second)):
            assert cp.plug_in(1, f"TAG-{n}", ev=CAR, dwell=7200)
        for cp in (first, second):
            await cp.wait_for(
                lambda cp=cp: (
                    charging(cp)
                    and 9100 in cp.core.profiles.profiles
                    and 9001 in cp.core.profiles.profiles
                    and abs(cp.core.connectors[1].session.limit_w / PER_AMP - 15.7) < 0.01
                ),  # type: ignore[union-attr]
                timeout=WAIT,
            )

        process.send_signal(signal.SIGKILL)
        await process.wait()
        for cp in (first, second):
            await cp.wait_for(lambda cp=cp: not cp.connected, timeout=WAIT)
        # Meanwhile a third car arrives: the charger starts it on its own, at the safe default.
        assert third.plug_in(1, "TAG-2", ev=CAR, dwell=7200, authorize=False)
        await third.wait_for(lambda: charging(third), timeout=WAIT)

        now = first.core.clock.sim_at_wall(time.time())
        after = now + LEASE + 120
        assert [limit_at(cp, now) for cp in (first, second)] == pytest.approx([15.7, 15.7])
        assert limit_at(third, now) == pytest.approx(10.5)
        decayed = [limit_at(cp, after) for cp in chargers]
        assert decayed == pytest.approx([10.5, 10.5, 10.5])
        assert sum(decayed) <= 32

        # csms comes back; two chargers reconnect. The one still away counts at its last
        # applied 15.7 A until it confirms a new limit: the two share the 15.8 A left.
        process = await serve_process(env)
        for cp in (first, third):
            await cp.connect(timeout=WAIT)
            await cp.boot(timeout=WAIT)
        for cp in (first, third):

            def reallocated(cp: Charger = cp) -> bool:
                now = cp.core.clock.sim_at_wall(time.time())
                return 9001 in cp.core.profiles.profiles and abs(limit_at(cp, now) - 7.9) < 0.01

            await cp.wait_for(reallocated, timeout=WAIT)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=WAIT
        ) as api:
            rows = (await api.get("/circuits/site/allocation")).json()["connectors"]
        held = {row["chargePointId"]: row["limitA"] for row in rows}
        assert held == {"KILL-0": 7.9, "KILL-1": 15.7, "KILL-2": 7.9}
    finally:
        for cp in chargers:
            await cp.close()
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            await process.wait()
