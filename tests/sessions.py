"""One charging session as test data: the frames a charger sends for it."""

from __future__ import annotations

from typing import Any

RFID = "04A2B3C4D5E6F7"  # a 7-byte UID: OICP can identify it
START = {"connectorId": 1, "idTag": RFID, "meterStart": 1000, "timestamp": "2026-03-01T10:00:00Z"}
STOP = {"transactionId": 0, "meterStop": 8500, "timestamp": "2026-03-01T11:30:00Z"}


def meter(tx: int, wh: int, at: str) -> dict[str, Any]:
    """MeterValues for transaction `tx`: one energy register reading `wh` at `at`."""
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": at, "sampledValue": sampled}],
    }
