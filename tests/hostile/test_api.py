"""The HTTP API under hostile or unlucky input: body cap, NUL, dates, unknown references,
and a database outage answered 503 with Retry-After (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import PG_ADMIN_DSN, RunningCsms, new_identity

pytestmark = pytest.mark.postgres


async def test_body_over_the_cap_is_refused_before_it_is_read(csms: RunningCsms) -> None:
    """A body beyond api.max_body_bytes gets 413 with a reason, and the API keeps serving."""
    async with csms.api() as api:
        big = b'{"status": "Accepted", "x": "' + b"x" * 2_000_000 + b'"}'
        response = await api.put(
            "/id-tags/BIG", content=big, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert "bytes" in response.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"x" * 100_000

        streamed = await api.put(
            "/id-tags/BIG", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert (await api.get("/charge-points")).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/id-tags/T\u0000", {"status": "Accepted"}),
        ("/id-tags/TAG", {"status": "Accepted", "parentIdTag": "P\u0000"}),
        ("/charge-points/CP-NUL", {"name": "bay\u00007"}),
    ],
)
async def test_nul_is_a_422(csms: RunningCsms, path: str, body: dict[str, str]) -> None:
    """A NUL character in a path or a body is the caller's fault: 422, on either database."""
    async with csms.api() as api:
        response = await api.put(path.replace("\u0000", "%00"), json=body)
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_expiry_date_out_of_range_is_a_422(csms: RunningCsms, when: str) -> None:
    """An expiryDate with no UTC equivalent is a 422 with the field named, not a 500."""
    async with csms.api() as api:
        response = await api.put("/id-tags/TAG", json={"status": "Accepted", "expiryDate": when})
    assert response.status_code == 422, response.text
    assert "expiryDate" in response.json()["detail"]


async def test_unknown_location_is_a_422_like_an_unknown_user(csms: RunningCsms) -> None:
    """A charge point naming a location that does not exist is refused like a missing user."""
    async with csms.api() as api:
        response = await api.put("/charge-points/CP-LOC", json={"locationId": "NOWHERE"})
        assert response.status_code == 422, response.text
        assert "locationId" in response.json()["detail"]
        assert (await api.get("/charge-points/CP-LOC")).status_code == 404


@asynccontextmanager
async def database_away(csms: RunningCsms) -> AsyncIterator[None]:
    """The csms's PostgreSQL database refuses every connection inside the block."""
    name = csms.app.database.engine.url.database
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


@pytest.mark.postgres_only
async def test_database_outage_is_503_with_retry_after(csms: RunningCsms) -> None:
    """With the database away, API reads and writes and new charger upgrades get 503."""
    async with database_away(csms), csms.api() as api:
        for response in (
            await api.get("/charge-points"),
            await api.get("/transactions"),
            await api.put("/id-tags/TAG", json={"status": "Accepted"}),
        ):
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{csms.ocpp_url}/{new_identity()}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ):
                pass
        assert refused.value.response.status_code == 503
        assert int(refused.value.response.headers["Retry-After"]) > 0
    async with csms.api() as api:
        assert (await api.get("/charge-points")).status_code == 200


async def test_open_api_is_not_affected_by_an_unrelated_client(csms: RunningCsms) -> None:
    """httpx sanity: the csms fixture's API answers (guards the fixtures above)."""
    async with httpx.AsyncClient(base_url=csms.api_url) as anonymous:
        assert (await anonymous.get("/charge-points")).status_code == 401
