"""Duplicates across processes, a database outage (docs/ocpp.md, "Connecting"),
and a 50-charger fleet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from csms.store.tables import Transaction
from tests.support import (
    PG_ADMIN_DSN,
    CallErrorReceived,
    RawCharger,
    RunningCsms,
    running_csms,
    settings_for,
)

START = {"connectorId": 1, "idTag": "DUP", "meterStart": 10, "timestamp": "2024-05-01T12:00:00Z"}


@asynccontextmanager
async def two_nodes(
    database_url: str, identity: str
) -> AsyncIterator[tuple[RunningCsms, RawCharger, RawCharger]]:
    """Two csms nodes on one database, and one charger identity connected to each."""
    async with (
        running_csms(settings_for(database_url)) as node_a,
        running_csms(settings_for(database_url)) as node_b,
        node_a.charger(identity) as via_a,
        node_b.charger(identity, boot=False) as via_b,
    ):
        yield node_a, via_a, via_b


@pytest.mark.postgres
async def test_duplicate_start_on_two_nodes_at_once(database_url: str) -> None:
    """The same StartTransaction sent at once to two csms nodes on one database: one id, one row."""
    async with two_nodes(database_url, "CP-DUP") as (node_a, via_a, via_b):
        for _ in range(5):
            first, second = await asyncio.gather(
                via_a.call("StartTransaction", START), via_b.call("StartTransaction", START)
            )
            assert first["transactionId"] == second["transactionId"]
        async with node_a.app.database.sessions() as session:
            rows = await session.execute(select(func.count()).select_from(Transaction))
            assert rows.scalar_one() == 1


@pytest.mark.postgres
async def test_duplicate_stop_on_two_nodes_records_one_stop(database_url: str) -> None:
    """Concurrent identical Stops on two nodes: both answered, one stop recorded."""
    async with two_nodes(database_url, "CP-DSTOP") as (node_a, via_a, via_b):
        tx = (await via_a.call("StartTransaction", START))["transactionId"]
        stop = {"transactionId": tx, "meterStop": 500, "timestamp": "2024-05-01T13:00:00Z"}
        answers = await asyncio.gather(
            via_a.call("StopTransaction", stop), via_b.call("StopTransaction", stop)
        )
        assert answers == [{}, {}]
        async with node_a.api() as api:
            body = (await api.get(f"/transactions/{tx}")).json()
        assert (body["meterStop"], body["energyWh"]) == (500, 490.0)


@pytest.mark.postgres_only
async def test_database_outage_answers_internal_error_then_recovers(csms: RunningCsms) -> None:
    """With the database unreachable a Stop gets InternalError; its retry succeeds."""
    name = csms.app.database.engine.url.database
    async with csms.charger("CP-T32") as cp:
        tx = (await cp.call("StartTransaction", START))["transactionId"]
        stop = {"transactionId": tx, "meterStop": 900, "timestamp": "2024-05-01T13:00:00Z"}
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            with pytest.raises(CallErrorReceived) as failed:
                await cp.call("StopTransaction", stop)
            assert failed.value.code == "InternalError"
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        assert await cp.call("StopTransaction", stop) == {}
    async with csms.api() as api:
        body = (await api.get(f"/transactions/{tx}")).json()
    assert (body["status"], body["meterStop"]) == ("completed", 900)


async def _one_session(csms: RunningCsms, n: int) -> int:
    async with csms.charger(f"FLEET-{n:03d}") as cp:
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
        )
        await cp.call("Authorize", {"idTag": "FLEET"})
        start: dict[str, Any] = {**START, "idTag": "FLEET", "meterStart": 1000 * n}
        tx: int = (await cp.call("StartTransaction", start))["transactionId"]
        for step in range(1, 4):
            sample = {"value": str(1000 * n + 250 * step)}
            await cp.call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx,
                    "meterValue": [
                        {"timestamp": f"2024-05-01T12:0{step}:00Z", "sampledValue": [sample]}
                    ],
                },
            )
        await cp.call(
            "StopTransaction",
            {
                "transactionId": tx,
                "meterStop": 1000 * n + 1000 + n,
                "timestamp": "2024-05-01T12:30:00Z",
            },
        )
        return tx


@pytest.mark.postgres
async def test_fifty_chargers_one_transaction_each(csms: RunningCsms) -> None:
    """50 chargers connect, boot and charge at once: exactly 50 transactions, right energies."""
    async with csms.api() as api:
        await api.put("/id-tags/FLEET", json={"status": "Accepted"})
    ids = await asyncio.gather(*(_one_session(csms, n) for n in range(50)))
    assert len(set(ids)) == 50
    async with csms.api() as api:
        listed = (await api.get("/transactions", params={"limit": 100})).json()
    assert listed["total"] == 50
    energies = {item["chargePointId"]: item["energyWh"] for item in listed["items"]}
    assert energies == {f"FLEET-{n:03d}": 1000.0 + n for n in range(50)}
    assert all(item["status"] == "completed" for item in listed["items"])
