"""Central System -> charger commands: validate, queue, send, record, and keep their effects."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from csms.core.passwords import hash_password
from csms.core.security import authorization_key_problem
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
# profiles, and the Security Whitepaper (edition 3) extension: every action the Central
# System sends to a charger.
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
        # SecWP A02/A03, M03-M05, A02 (trigger), N01, L01.
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)


def is_authorization_key(action: str, payload: dict[str, Any]) -> bool:
    return action == "ChangeConfiguration" and payload.get("key") == "AuthorizationKey"


def redacted(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The request as it may be stored and published: never with the AuthorizationKey."""
    if is_authorization_key(action, payload):
        # OCPP-J errata §3.12 / SecWP A01.FR.09: the key is write-only and never logged.
        return {**payload, "value": "<redacted>"}
    return payload


def configuration_problem(payload: dict[str, Any], *, security_profile: int) -> str | None:
    """Why a ChangeConfiguration must not be sent, or None."""
    key, value = payload.get("key"), payload.get("value", "")
    if key == "AuthorizationKey":
        return authorization_key_problem(value)
    if key == "SecurityProfile":
        if not value.isdigit() or not 0 <= int(value) <= 3:
            return "SecurityProfile must be 0, 1, 2 or 3"
        if int(value) < security_profile:
            # SecWP A00.FR.005: the profile may not be lowered through OCPP.
            return f"SecurityProfile may not go below the registered {security_profile}"
    return None


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
            row = await repo.get_charge_point(session, charge_point_id)
        if row is None:
            raise UnknownChargePoint(f"charge point {charge_point_id} not found")
        if action not in CENTRAL_SYSTEM_ACTIONS:
            raise InvalidCommand(f"unknown action {action}")
        # Chargers in strict mode reject anything off-schema, so nothing invalid is sent.
        violation = self._validators.check_request(action, payload)
        if violation is not None:
            raise InvalidCommand(violation.description, path=violation.details.get("path"))
        if action == "ChangeConfiguration":
            problem = configuration_problem(payload, security_profile=row.security_profile)
            if problem is not None:
                raise InvalidCommand(problem)
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
        new_password_hash = None
        if is_authorization_key(action, payload):
            # SecWP A01.FR.08: the new key is kept only as a salted hash, and only once the
            # charger accepted it (A01.FR.03/04); the request is recorded without it.
            new_password_hash = await asyncio.to_thread(
                hash_password, bytes.fromhex(payload["value"]), salt=secrets.token_bytes(16)
            )
        record = partial(
            CommandRecord,
            charge_point_id=charge_point_id,
            action=action,
            request=redacted(action, payload),
            requested_by=requested_by,
            requested_at=self._clock(),
            new_password_hash=new_password_hash,
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
