"""End to end through one charger: boot, authorize, charge, stop, read it over HTTP."""

from __future__ import annotations

import pytest

from tests.support import RunningCsms


@pytest.mark.postgres
async def test_one_transaction_end_to_end(csms: RunningCsms) -> None:
    """A booted charger's transaction is visible through the API with its energy."""
    async with csms.api() as api:
        assert (await api.put("/id-tags/TAG1", json={"status": "Accepted"})).status_code == 201
    async with csms.charger("CP-SMOKE") as cp:
        assert (await cp.call("Heartbeat", {}))["currentTime"].endswith("Z")
        await cp.call(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}
        )
        assert (await cp.call("Authorize", {"idTag": "TAG1"}))["idTagInfo"]["status"] == "Accepted"
        started = await cp.call(
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "TAG1",
                "meterStart": 1000,
                "timestamp": "2026-01-01T10:00:00Z",
            },
        )
        tx = started["transactionId"]
        await cp.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [
                    {
                        "timestamp": "2026-01-01T10:10:00Z",
                        "sampledValue": [{"value": "2.5", "unit": "kWh"}],
                    }
                ],
            },
        )
        async with csms.api() as api:
            active = (await api.get(f"/transactions/{tx}")).json()
        assert active["status"] == "active"
        assert active["energyWh"] == 1500.0
        await cp.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 4000, "timestamp": "2026-01-01T11:00:00Z"},
        )
    async with csms.api() as api:
        body = (await api.get(f"/transactions/{tx}")).json()
        charger = (await api.get("/charge-points/CP-SMOKE")).json()
    assert body["status"] == "completed"
    assert body["energyWh"] == 3000.0
    assert body["stopReason"] == "Local"
    assert charger["vendor"] == "TestVendor"
    assert charger["connectors"][0]["status"] == "Preparing"
