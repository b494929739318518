"""The HTTP API has its own thread and loop: however busy it is, chargers are answered."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Depends

from csms.api.auth import guard, require
from csms.core.access import Scope
from tests.support import MS, RunningCsms


async def test_a_stuck_api_does_not_stop_chargers(csms: RunningCsms) -> None:
    """While an API request holds the API's loop, a new charger still boots and is stored."""
    entered, released = threading.Event(), threading.Event()
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(guard)])

    @router.get("/test-stuck", dependencies=[require(Scope.READ)])
    async def stuck() -> dict[str, bool]:
        entered.set()
        # Blocks the loop this route runs on, as a CPU-heavy page would, for up to 10 s.
        return {"released": released.wait(timeout=10_000 * MS)}

    csms.app.api_app.include_router(router)
    async with csms.api() as api:
        request = asyncio.create_task(api.get("/test-stuck"))
        assert await asyncio.to_thread(entered.wait, 10_000 * MS)
        try:
            async with csms.charger("CP-LOOP") as cp:
                assert (await cp.boot())["status"] == "Accepted"
                assert "currentTime" in await cp.call("Heartbeat", {})
        finally:
            released.set()
        answer = await request
    assert answer.json() == {"released": True}
    async with csms.api() as api:
        assert (await api.get("/charge-points/CP-LOOP")).json()["vendor"] == "TestVendor"
