"""Absolute times in the central system's commands follow the real clock, at any speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from simulators import Fleet, Scenario
from simulators.clock import Clock, iso
from simulators.station import ConnectorStatus, SessionState
from simulators.testing import SIM_EPOCH, Bench, make_station
from tests.support import MS

WAIT = 10_000 * MS  # real seconds; the bug made "now" wait two real minutes at 600x
SPEED = 600.0
RUN = 120.0  # real seconds the fleet is told it runs: its clock starts 20 h in the past
LIMIT_A = 6.0  # the TxProfile's limit: 6 A x 3 phases x 230 V
LIMIT_W = LIMIT_A * 3 * 230.0

Command = Callable[[], tuple[str, dict[str, Any]]]


class CentralSystem:
    """A minimal central system: answers the charger's CALLs, sends the test's commands one
    after the other once the charger is booted, and keeps what arrived."""

    def __init__(self, commands: list[Command]) -> None:
        self.commands = list(commands)  # built when sent, so that "now" is the sending time
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, dict[str, Any]] = {}  # our CALLs' answers, by action
        self.changed = asyncio.Event()
        self._pending: dict[str, str] = {}

    async def handler(self, ws: ServerConnection) -> None:
        async for message in ws:
            frame = orjson.loads(message)
            if frame[0] == 2:
                _, unique_id, action, payload = frame
                self.received.append((action, payload))
                await ws.send(orjson.dumps([3, unique_id, self._answer(action)]).decode())
                if action == "StatusNotification" and not self._pending and self.commands:
                    await self._send_next(ws)
            elif frame[0] == 3:
                self.answers[self._pending.pop(frame[1])] = frame[2]
                if self.commands:
                    await self._send_next(ws)
            self.changed.set()

    async def _send_next(self, ws: ServerConnection) -> None:
        action, payload = self.commands.pop(0)()
        unique_id = f"cs-{len(self.commands)}"
        self._pending[unique_id] = action
        await ws.send(orjson.dumps([2, unique_id, action, payload]).decode())

    @staticmethod
    def _answer(action: str) -> dict[str, Any]:
        now = iso(time.time())
        return {
            "BootNotification": {"status": "Accepted", "currentTime": now, "interval": 300},
            "Heartbeat": {"currentTime": now},
            "Authorize": {"idTagInfo": {"status": "Accepted"}},
            "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
            "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
        }.get(action, {})

    def sent(self, action: str) -> list[dict[str, Any]]:
        """Payloads of the charger's CALLs of ``action``."""
        return [payload for name, payload in self.received if name == action]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (WAIT real seconds at most) until ``predicate()`` holds."""
        async with asyncio.timeout(WAIT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def remote_start_with_profile_from_now() -> tuple[str, dict[str, Any]]:
    return "RemoteStartTransaction", {
        "idTag": "FAST",
        "connectorId": 1,
        "chargingProfile": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "startSchedule": iso(time.time()),
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": LIMIT_A}],
            },
        },
    }


def update_firmware_now() -> tuple[str, dict[str, Any]]:
    return "UpdateFirmware", {
        "location": "https://fw.example/sim-2.0.0.bin",
        "retrieveDate": iso(time.time()),
    }


def powers(central: CentralSystem) -> list[float]:
    """Power.Active.Import readings of the MeterValues received."""
    return [
        float(sampled["value"])
        for payload in central.sent("MeterValues")
        for value in payload["meterValue"]
        for sampled in value["sampledValue"]
        if sampled.get("measurand") == "Power.Active.Import"
    ]


async def test_commands_dated_now_take_effect_now_at_600x() -> None:
    """At 600x a TxProfile starting "now" caps the power at once, and an UpdateFirmware
    retrieveDate of "now" starts the download at once, though the simulated clock lags."""
    central = CentralSystem([remote_start_with_profile_from_now, update_firmware_now])
    scenario = Scenario.load("idle").replace(speed=SPEED, connect_spread=0.0)
    async with serve(central.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        fleet = Fleet(f"ws://127.0.0.1:{port}/ocpp", scenario, chargers=1, connectors=1)
        run = asyncio.create_task(fleet.run(duration=RUN))
        try:
            await central.wait_for(lambda: bool(powers(central)))
            assert powers(central)[0] == pytest.approx(LIMIT_W)
            await central.wait_for(lambda: bool(central.sent("FirmwareStatusNotification")))
            assert central.sent("FirmwareStatusNotification")[0] == {"status": "Downloading"}
        finally:
            fleet.stop()
            summary = await run
    assert fleet.clock is not None
    assert fleet.clock.sim(fleet.clock.real0) < fleet.clock.wall(fleet.clock.real0) - 3600
    assert summary["ok"], summary["errors"]


@pytest.mark.parametrize("lag", [0.0, -20 * 3600.0, 20 * 3600.0])
def test_reservation_and_local_list_expiry_follow_the_real_clock(lag: float) -> None:
    """ReserveNow's expiryDate and a listed tag's expiryDate pass when the real clock does,
    whether the simulated clock lags behind it, runs ahead, or agrees."""
    clock = Clock(speed=SPEED, real0=0.0, sim0=SIM_EPOCH + lag, wall0=SIM_EPOCH)
    bench = Bench(make_station(clock=clock)).start()
    expiry = iso(SIM_EPOCH + 60.0)  # a real minute from the start
    reserve = {"connectorId": 1, "expiryDate": expiry, "idTag": "R", "reservationId": 1}
    assert bench.send("ReserveNow", reserve)[2] == {"status": "Accepted"}
    listed = {"idTag": "L", "idTagInfo": {"status": "Accepted", "expiryDate": expiry}}
    local_list = {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [listed]}
    assert bench.send("SendLocalList", local_list)[2] == {"status": "Accepted"}
    bench.advance(59.0)
    assert bench.station.status_of(1) is ConnectorStatus.reserved
    bench.disconnect()  # offline, the local list decides
    assert bench.station.plug_in(2, "L", bench.now)
    bench.pump()
    assert bench.station.session(2).state is SessionState.CHARGING  # type: ignore[union-attr]
    bench.advance(2.0)
    assert bench.station.status_of(1) is ConnectorStatus.available
    assert bench.station.plug_in(1, "L", bench.now)
    bench.pump()
    assert bench.station.session(1).state is SessionState.REFUSED  # type: ignore[union-attr]
