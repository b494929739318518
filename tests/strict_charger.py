"""A charger for command tests that holds the CSMS to the 1.6 schema, like a strict charger.

Every CALL it receives is checked with the `jsonschema` package (independent of the
jsonschema-rs validators csms uses) against the schema the `ocpp` package ships, and
answered with a payload that is itself valid for that action.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.support import MS, RawCharger

SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"

SCHEDULE = {
    "chargingRateUnit": "A",
    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
}

# A valid request and a valid answer for every Central System -> Charge Point action.
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "CancelReservation": ({"reservationId": 7}, {"status": "Accepted"}),
    "ChangeAvailability": ({"connectorId": 1, "type": "Inoperative"}, {"status": "Accepted"}),
    "ChangeConfiguration": (
        {"key": "HeartbeatInterval", "value": "120"},
        {"status": "Accepted"},
    ),
    "ClearCache": ({}, {"status": "Accepted"}),
    "ClearChargingProfile": ({"id": 1}, {"status": "Accepted"}),
    "DataTransfer": ({"vendorId": "com.acme", "data": "x"}, {"status": "Accepted"}),
    "GetCompositeSchedule": (
        {"connectorId": 1, "duration": 3600},
        {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2026-01-01T00:00:00Z",
            "chargingSchedule": SCHEDULE,
        },
    ),
    "GetConfiguration": (
        {"key": ["HeartbeatInterval"]},
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": [],
        },
    ),
    "GetDiagnostics": (
        {"location": "ftp://diag.example.com/"},
        {"fileName": "diagnostics.zip"},
    ),
    "GetLocalListVersion": ({}, {"listVersion": 3}),
    "RemoteStartTransaction": ({"connectorId": 1, "idTag": "CARD-1"}, {"status": "Accepted"}),
    "RemoteStopTransaction": ({"transactionId": 42}, {"status": "Accepted"}),
    "ReserveNow": (
        {
            "connectorId": 1,
            "expiryDate": "2099-01-01T00:00:00Z",
            "idTag": "CARD-1",
            "reservationId": 7,
        },
        {"status": "Accepted"},
    ),
    "Reset": ({"type": "Soft"}, {"status": "Accepted"}),
    "SendLocalList": (
        {
            "listVersion": 5,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "CARD-1", "idTagInfo": {"status": "Accepted"}}],
        },
        {"status": "Accepted"},
    ),
    "SetChargingProfile": (
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": SCHEDULE,
            },
        },
        {"status": "Accepted"},
    ),
    "TriggerMessage": ({"requestedMessage": "StatusNotification"}, {"status": "Accepted"}),
    "UnlockConnector": ({"connectorId": 1}, {"status": "Unlocked"}),
    "UpdateFirmware": (
        {"location": "https://fw.example.com/1.2.bin", "retrieveDate": "2026-01-01T00:00:00Z"},
        {},
    ),
}


def _validator(name: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads((SCHEMAS / f"{name}.json").read_text()))


@dataclass
class StrictCharger:
    """Answers the CSMS's CALLs; records them and any schema violation it saw."""

    raw: RawCharger
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Answers that break the .conf schema on purpose (firmware bugs), sent unchecked.
    invalid_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_outstanding: int = 0
    unanswered: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _replies: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)

    async def serve(self) -> None:
        """Answer every CALL until the socket closes."""
        async for text in self.raw.ws:
            frame = orjson.loads(text)
            if frame[0] != 2:
                reply = self._replies.pop(frame[1], None)
                if reply is not None:
                    reply.set_result(frame)
                continue
            _, unique_id, action, payload = frame
            self.received.append((action, payload))
            self.arrived.set()
            request_errors = list(_validator(action).iter_errors(payload))
            self.violations += [f"{action}: {error.message}" for error in request_errors]
            self.unanswered.append(unique_id)
            self.max_outstanding = max(self.max_outstanding, len(self.unanswered))
            if action in self.silent:
                continue
            await self.reply(unique_id, action)

    async def reply(self, unique_id: str, action: str) -> None:
        self.unanswered.remove(unique_id)
        if action in self.errors:
            code, description, details = self.errors[action]
            await self.raw.send_raw(
                orjson.dumps([4, unique_id, code, description, details]).decode()
            )
            return
        if action in self.invalid_answers:
            answer = self.invalid_answers[action]
            await self.raw.send_raw(orjson.dumps([3, unique_id, answer]).decode())
            return
        # Not .get(action, EXAMPLES[...]): actions without an example need an answer set.
        answer = self.answers[action] if action in self.answers else EXAMPLES[action][1]
        assert _validator(f"{action}Response").is_valid(answer), answer
        await self.raw.send_raw(orjson.dumps([3, unique_id, answer]).decode())

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send our own CALL (e.g. StartTransaction) and return the CALLRESULT payload."""
        unique_id = f"sc-{uuid.uuid4().hex[:16]}"
        reply: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._replies[unique_id] = reply
        await self.raw.send_raw(orjson.dumps([2, unique_id, action, payload]).decode())
        async with asyncio.timeout(10_000 * MS):
            frame = await reply
        assert frame[0] == 3, frame
        result: dict[str, Any] = frame[2]
        return result

    async def next_call(self) -> tuple[str, dict[str, Any]]:
        """Wait for the next CALL to arrive and return it."""
        seen = len(self.received)
        async with asyncio.timeout(10_000 * MS):
            while len(self.received) <= seen:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received[seen]


@asynccontextmanager
async def strict_charger(url: str) -> AsyncIterator[StrictCharger]:
    """A booted charger at `url` answering CALLs in the background."""
    websocket: ClientConnection
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS) as websocket:  # type: ignore[list-item]
        raw = RawCharger(websocket)
        await raw.boot()
        charger = StrictCharger(raw=raw)
        task = asyncio.create_task(charger.serve())
        try:
            yield charger
        finally:
            task.cancel()
