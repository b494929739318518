"""One charging session as test data: the frames a charger sends, and the SessionFacts,
party and CDR location the pure OCPI/OICP builders take."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from csms.core.session import Party, SessionFacts
from csms.events import build

PARTY = Party(country_code="BE", party_id="BEC", currency="EUR")
# A CDR's location snapshot: a Gent address, CP001 connector 1 (a Type 2 socket).
LOCATION = build.cdr_location(
    {
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "country": "BEL",
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
    },
    party=PARTY,
    charge_point_id="CP001",
    connector_id=1,
    connector_spec=None,
)
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


def session_facts(start: datetime, **changes: Any) -> SessionFacts:
    """Transaction 42 on CP001 connector 1 (tag 04A2B3C4, meterStart 1,000,000 Wh, BE*BEC's
    LOC1, EUR) started at `start`, with `changes` to any other field."""
    defaults: dict[str, Any] = {
        "transaction_id": 42,
        "charge_point_id": "CP001",
        "connector_id": 1,
        "id_tag": "04A2B3C4",
        "meter_start_wh": 1_000_000,
        "country_code": "BE",
        "party_id": "BEC",
        "location_id": "LOC1",
        "currency": "EUR",
    }
    return SessionFacts(start=start, **(defaults | changes))
