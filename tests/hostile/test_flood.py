"""Denial of service by one socket: fragments, over-long values, DataTransfer, the answer cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support import (
    MS,
    CallErrorReceived,
    RunningCsms,
    new_identity,
    running_csms,
    settings_for,
)


@pytest.fixture
async def bounded(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with small fragment and DataTransfer bounds."""
    settings = settings_for(
        database_url, max_fragments=64, fragment_timeout=0.2, max_data_transfer=1024
    )
    async with running_csms(settings) as running:
        yield running


async def close_code(csms: RunningCsms, fragments: Any) -> int | None:
    """Send one fragmented message; the close code csms answered with (None: still open)."""
    url = f"{csms.ocpp_url}/{new_identity()}"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        try:
            await ws.send(fragments(ws))
            async with asyncio.timeout(10_000 * MS):
                await ws.recv()
        except ConnectionClosed:
            pass
        received = ws.protocol.close_rcvd
        return None if received is None else int(received.code)


async def test_too_many_fragments_close_the_connection(bounded: RunningCsms) -> None:
    """A message in more fragments than ocpp.max_fragments is refused with 1009 at once."""

    async def one_byte_frames(_ws: Any) -> AsyncIterator[str]:
        for _ in range(10_000):
            yield " "

    assert await close_code(bounded, one_byte_frames) == 1009


async def test_slow_fragments_close_the_connection(bounded: RunningCsms) -> None:
    """A fragmented message still incomplete after ocpp.fragment_timeout is refused (1009)."""

    async def trickle(ws: Any) -> AsyncIterator[str]:
        closed = asyncio.ensure_future(ws.wait_closed())
        yield '[2,"slow","Heartbeat",'
        for _ in range(60):
            done, _ = await asyncio.wait([closed], timeout=50 * MS)
            if done:
                return
            yield " "
        closed.cancel()

    assert await close_code(bounded, trickle) == 1009


async def test_a_few_fragments_are_still_one_message(bounded: RunningCsms) -> None:
    """A message in a few fragments is answered as usual."""
    async with bounded.charger() as cp:

        async def pieces() -> AsyncIterator[str]:
            for piece in ('[2,"frag",', '"Heartbeat"', ",{}", "]"):
                yield piece

        await cp.ws.send(pieces())
        answer = await cp.recv_frame()
        assert answer[:2] == [3, "frag"]


async def test_long_value_is_not_echoed_in_full(csms: RunningCsms) -> None:
    """A 1 MB idTag gets a CALLERROR with a short description, and the charger stays."""
    async with csms.charger() as cp:
        with pytest.raises(CallErrorReceived) as caught:
            await cp.call("Authorize", {"idTag": "A" * 1_000_000})
        assert caught.value.code == "TypeConstraintViolation"
        assert len(caught.value.description) < 400
        assert "characters" in caught.value.description
        assert "currentTime" in await cp.call("Heartbeat", {})


async def test_data_transfer_over_the_cap_is_refused(bounded: RunningCsms) -> None:
    """DataTransfer data beyond ocpp.max_data_transfer gets a CALLERROR; at the cap it is kept."""
    async with bounded.charger() as cp:
        with pytest.raises(CallErrorReceived) as caught:
            await cp.call("DataTransfer", {"vendorId": "acme", "data": "x" * 1025})
        assert caught.value.code == "PropertyConstraintViolation"
        assert "1024" in caught.value.description
        answer = await cp.call("DataTransfer", {"vendorId": "acme", "data": "x" * 1024})
        assert answer == {"status": "UnknownVendorId"}


async def test_repeated_rejections_are_logged_a_few_times(csms: RunningCsms) -> None:
    """A charger looping on a bad message gets every answer, but only a few log lines."""
    async with csms.charger() as cp:
        for _ in range(30):
            with pytest.raises(CallErrorReceived):
                await cp.call("Authorize", {"idTag": "B" * 30})
    counters = csms.app.ocpp.counters
    assert counters["calls.rejected"] == 30
    assert counters["log.rejections_suppressed"] == 20
