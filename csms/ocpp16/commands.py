"""Central System -> charger commands: validate, queue, send, record, and keep their effects."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from csms.errors import (
    ChargerNotConnected,
    CommandError,
    CommandQueueFull,
    CommandRejected,
    CommandTimeout,
    InvalidCommand,
    UnknownChargePoint,
)
from csms.events.record import Recorder
from csms.ocpp16.connection import ChargerConnection
from csms.ocpp16.schemas import Validators
from csms.store import repo
from csms.store.commands import CommandRecord
from csms.store.db import Database

log = structlog.get_logger("csms.commands")

# OCPP 1.6 core, firmware, local list, reservation, smart charging and remote trigger
# profiles: every action the Central System sends to a charger.
CENTRAL_SYSTEM_ACTIONS = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)


def status_for(error: CommandError) -> int:
    """The contract's status for each way a command can fail (HTTP, and MQTT replies)."""
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


_STATUS_BY_ERROR: tuple[tuple[type[CommandError], int], ...] = (
    (UnknownChargePoint, 404),
    (InvalidCommand, 422),
    (ChargerNotConnected, 409),
    (CommandQueueFull, 429),
    (CommandTimeout, 504),
    (CommandRejected, 502),
)


@dataclass(frozen=True)
class CommandResult:
    command_id: int
    action: str
    charge_point_id: str
    response: dict[str, Any]


class Commands:
    """Runs commands for the API (and, later, MQTT ingress) with the contract's checks."""

    def __init__(
        self,
        *,
        chargers: dict[str, ChargerConnection],
        database: Database,
        validators: Validators,
        clock: Callable[[], datetime],
        queue_size: int,
        call_timeout: float,
        recorder: Recorder,
    ) -> None:
        self._recorder = recorder
        self._chargers = chargers
        self._database = database
        self._validators = validators
        self._clock = clock
        self._queue_size = queue_size
        self._call_timeout = call_timeout

    async def check(self, charge_point_id: str, action: str, payload: Any) -> ChargerConnection:
        """The contract's order of refusals: 404, then 422, then 409, then 429.

        Raises:
            UnknownChargePoint, InvalidCommand, ChargerNotConnected, CommandQueueFull.
        """
        async with self._database.sessions() as session:
            if await repo.get_charge_point(session, charge_point_id) is None:
                raise UnknownChargePoint(f"charge point {charge_point_id} not found")
        if action not in CENTRAL_SYSTEM_ACTIONS:
            raise InvalidCommand(f"unknown action {action}")
        # Chargers in strict mode reject anything off-schema, so nothing invalid is sent.
        violation = self._validators.check_request(action, payload)
        if violation is not None:
            raise InvalidCommand(violation.description, path=violation.details.get("path"))
        connection = self._chargers.get(charge_point_id)
        if connection is None:
            raise ChargerNotConnected(f"charge point {charge_point_id} is not connected")
        if connection.calls_queued >= self._queue_size:
            raise CommandQueueFull(
                f"{connection.calls_queued} commands already waiting for {charge_point_id}",
                retry_after=math.ceil(self._call_timeout),
            )
        return connection

    async def run(
        self,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        requested_by: str | None = None,
    ) -> CommandResult:
        """Send a command and return the charger's answer; every attempt is recorded.

        Raises:
            UnknownChargePoint, InvalidCommand, ChargerNotConnected, CommandQueueFull:
                refused before anything was sent.
            CommandTimeout, CommandRejected, ChargerNotConnected: what the charger did.
        """
        connection = await self.check(charge_point_id, action, payload)
        record = partial(
            CommandRecord,
            charge_point_id=charge_point_id,
            action=action,
            request=payload,
            requested_by=requested_by,
            requested_at=self._clock(),
        )
        try:
            response = await connection.call(action, payload)
        except CommandRejected as exc:
            await self._keep(
                record(
                    outcome="callerror",
                    completed_at=self._clock(),
                    error_code=exc.error_code,
                    error_description=exc.description,
                    error_details=exc.details,
                )
            )
            raise
        except (CommandTimeout, ChargerNotConnected) as exc:
            outcome = "timeout" if isinstance(exc, CommandTimeout) else "disconnected"
            await self._keep(
                record(outcome=outcome, completed_at=self._clock(), error_description=str(exc))
            )
            raise
        command_id = await self._keep(
            record(outcome="ok", completed_at=self._clock(), response=response)
        )
        log.info("command_completed", action=action, charge_point_id=charge_point_id)
        return CommandResult(
            command_id=command_id,
            action=action,
            charge_point_id=charge_point_id,
            response=response,
        )

    async def _keep(self, record: CommandRecord) -> int:
        command_id: int = await self._database.writer.submit(
            partial(self._recorder.command, record=record)
        )
        return command_id
