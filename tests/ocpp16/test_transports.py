"""What both WebSocket transports must do alike: fragments, UTF-8, floods, the 1009 limit.

Every test in tests/ocpp16 runs on both (tests/conftest.py); these are the WebSocket rules
that the other files do not reach.
"""

from __future__ import annotations

import sys

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from csms.errors import ConfigError
from csms.ocpp16.server import resolve_transport
from tests.support import RunningCsms, disconnected, new_identity, running_csms, settings_for


async def test_the_transport_asked_for_serves(csms: RunningCsms, transport: str) -> None:
    """ocpp.transport picks the WebSocket layer; "auto" picks picows once it is installed."""
    assert csms.app.ocpp.transport == transport
    assert resolve_transport("auto") == "picows"
    async with csms.charger() as charger:
        assert "currentTime" in await charger.call("Heartbeat", {})


def test_without_picows_auto_falls_back_and_picows_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the `speed` extra, "auto" is websockets and "picows" a clear start-up error."""
    monkeypatch.setitem(sys.modules, "picows", None)  # as if it were not installed
    assert resolve_transport("auto") == "websockets"
    assert resolve_transport("websockets") == "websockets"
    with pytest.raises(ConfigError, match=r"csms\[speed\]"):
        resolve_transport("picows")


async def test_a_fragmented_message_is_put_together(csms: RunningCsms) -> None:
    """RFC 6455 §5.4: a CALL sent in three fragments is one message, answered once."""
    async with csms.charger() as charger:
        frame = orjson.dumps([2, "frag-1", "Heartbeat", {}]).decode()
        await charger.ws.send([frame[:5], frame[5:12], frame[12:]])
        answer = await charger.recv_frame()
    assert answer[:2] == [3, "frag-1"]


async def test_fragments_over_the_maximum_close_with_1009(database_url: str) -> None:
    """ocpp.max_frame_size bounds a whole message: fragments each under it, together over
    it, close the connection with 1009."""
    async with running_csms(settings_for(database_url, max_frame_size=4096)) as csms:
        identity = new_identity("FRAG")
        async with csms.charger(identity) as charger:
            frame = orjson.dumps([2, "f", "DataTransfer", {"vendorId": "v", "data": "x" * 6000}])
            text = frame.decode()
            await charger.ws.send([text[:3000], text[3000:]])
            with pytest.raises(ConnectionClosed) as closed:
                await charger.recv_frame()
        await disconnected(csms, identity)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert csms.app.counters["frames.too_big"] == 1


async def test_invalid_utf8_closes_with_1007(csms: RunningCsms) -> None:
    """RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007."""
    async with csms.charger() as charger:
        await charger.ws.send(b'[2, "u", "Heartbeat", {"\xff": 1}]', text=True)
        with pytest.raises(ConnectionClosed) as closed:
            await charger.recv_frame()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007


async def test_a_flood_is_answered_in_order(csms: RunningCsms) -> None:
    """A charger that sends many CALLs before reading any answer gets every answer, in
    order: reading pauses while CALLs wait and resumes as they are answered."""
    count = 300
    async with csms.charger() as charger:
        for n in range(count):
            await charger.send_raw(orjson.dumps([2, f"m{n}", "Heartbeat", {}]).decode())
        ids = [(await charger.recv_frame())[1] for _ in range(count)]
    assert ids == [f"m{n}" for n in range(count)]


async def test_a_close_from_the_charger_is_answered(csms: RunningCsms) -> None:
    """The charger's close frame is echoed (RFC 6455 §5.5.1) and the charger is offline."""
    identity = new_identity("BYE")
    async with csms.charger(identity) as charger:
        await charger.ws.close(code=4000, reason="maintenance")
        await disconnected(csms, identity)
    assert charger.ws.close_code == 4000
    async with csms.api() as api:
        body = (await api.get(f"/charge-points/{identity}")).json()
    assert body["connected"] is False
