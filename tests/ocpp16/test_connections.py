"""Connection life: replacement, half-open detection (docs/ocpp.md, "Connecting"), and
CSMS->charger CALLs (docs/ocpp.md, "Our CALLs to the charger")."""

from __future__ import annotations

import asyncio

import pytest

from csms.errors import ChargerNotConnected, CommandRejected, CommandTimeout
from tests.support import MS, RunningCsms, disconnected, running_csms, settings_for


async def test_new_connection_replaces_the_old_one(csms: RunningCsms) -> None:
    """The newest socket wins; the old one's late close leaves the charger online."""
    async with csms.charger("CP-T38") as old:
        async with csms.charger("CP-T38", boot=False) as new:
            async with asyncio.timeout(10_000 * MS):
                await old.ws.wait_closed()
            assert old.ws.close_code == 1000
            assert "currentTime" in await new.call("Heartbeat", {})
            # Commands go to the newest connection.
            command = asyncio.create_task(csms.chargers["CP-T38"].call("ClearCache", {}))
            frame = await new.recv_frame()
            assert frame[2] == "ClearCache"
            await new.send_raw(f'[3, "{frame[1]}", {{"status": "Accepted"}}]')
            assert await command == {"status": "Accepted"}
            async with csms.api() as api:
                body = (await api.get("/charge-points/CP-T38")).json()
            assert body["connected"] is True
            assert body["networkStatus"] == "available"
    await disconnected(csms, "CP-T38")
    async with csms.api() as api:
        body = (await api.get("/charge-points/CP-T38")).json()
    assert (body["connected"], body["networkStatus"]) == (False, "temporarily_unavailable")


async def test_half_open_socket_is_detected(database_url: str) -> None:
    """A client that stops reading is found by server pings and closed."""
    settings = settings_for(database_url, ping_interval=200 * MS, ping_timeout=200 * MS)
    async with running_csms(settings) as csms, csms.charger("CP-T37") as cp:
        assert "CP-T37" in csms.chargers
        transport = cp.ws.transport
        transport.pause_reading()  # no more pongs: the socket is half-open from our side
        await disconnected(csms, "CP-T37")
        transport.resume_reading()


async def test_one_outstanding_call_per_charger(csms: RunningCsms) -> None:
    """Two commands to one charger go out one after the other, never both at once
    (docs/ocpp.md, "Our CALLs to the charger")."""
    async with csms.charger("CP-ONE") as cp:
        connection = csms.chargers["CP-ONE"]
        first = asyncio.create_task(connection.call("ClearCache", {}))
        second = asyncio.create_task(connection.call("GetLocalListVersion", {}))
        call_1 = await cp.recv_frame()
        # A crossing CALL of ours is answered while the CSMS awaits our answer.
        heartbeat = await cp.exchange([2, "hb", "Heartbeat", {}])
        assert heartbeat[:2] == [3, "hb"]  # and the second command has not been sent meanwhile
        await cp.send_raw(f'[3, "{call_1[1]}", {{"status": "Accepted"}}]')
        call_2 = await cp.recv_frame()
        assert (call_1[2], call_2[2]) == ("ClearCache", "GetLocalListVersion")
        await cp.send_raw(f'[3, "{call_2[1]}", {{"listVersion": 3}}]')
        assert await first == {"status": "Accepted"}
        assert await second == {"listVersion": 3}


async def test_late_answer_is_dropped_not_given_to_the_next_call(csms: RunningCsms) -> None:
    """A timed-out CALL's late answer is dropped by id; the next call gets its own."""
    async with csms.charger("CP-T18") as cp:
        connection = csms.chargers["CP-T18"]
        slow = asyncio.create_task(connection.call("ClearCache", {}, timeout=100 * MS))
        unanswered = await cp.recv_frame()
        with pytest.raises(CommandTimeout):
            await slow
        await cp.send_raw(f'[3, "{unanswered[1]}", {{"status": "Rejected"}}]')
        following = asyncio.create_task(connection.call("ClearCache", {}))
        frame = await cp.recv_frame()
        await cp.send_raw(f'[3, "{frame[1]}", {{"status": "Accepted"}}]')
        assert await following == {"status": "Accepted"}


async def test_call_error_becomes_command_rejected(csms: RunningCsms) -> None:
    """A CALLERROR answer raises CommandRejected with the charger's code and details."""
    async with csms.charger("CP-T19") as cp:
        command = asyncio.create_task(csms.chargers["CP-T19"].call("Reset", {"type": "Soft"}))
        frame = await cp.recv_frame()
        await cp.send_raw(f'[4, "{frame[1]}", "NotSupported", "no", {{"a": 1}}]')
        with pytest.raises(CommandRejected) as rejected:
            await command
    assert (rejected.value.error_code, rejected.value.details) == ("NotSupported", {"a": 1})


async def test_call_fails_when_the_charger_disconnects(csms: RunningCsms) -> None:
    """A command waiting for an answer fails at once when the socket closes."""
    async with csms.charger("CP-GONE") as cp:
        command = asyncio.create_task(csms.chargers["CP-GONE"].call("ClearCache", {}))
        await cp.recv_frame()
        await cp.ws.close()
    with pytest.raises(ChargerNotConnected):
        await command
