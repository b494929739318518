"""CSMS -> charger commands: the checks, the call, the record and its events.

The API and MQTT ingress both run commands through `Commands.run`, so a command is
refused, sent, recorded and published the same way whichever way it came
(docs/api.md, "Commands").
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.balancing import (
    Caps,
    CapsProblem,
    check_against_caps,
    collides_with_balancer,
    reserved_id,
)
from csms.core.commands import (
    CENTRAL_SYSTEM_ACTIONS,
    Effect,
    command_effects,
    configuration_problem,
    is_authorization_key,
    redacted,
)
from csms.core.passwords import PasswordHasher, Scheme
from csms.core.registration import RegistrationStatus, command_refusal
from csms.core.schedule import ProfileError, profile_from_ocpp
from csms.errors import (
    ChargerNotAccepted,
    ChargerNotConnected,
    CommandQueueFull,
    CommandRejected,
    CommandTimeout,
    InvalidAnswer,
    InvalidCommand,
    UnknownChargePoint,
)
from csms.events import build
from csms.flows.reservations import reservation_events
from csms.metrics import Metrics, monotonic
from csms.store import circuits, outbox
from csms.store.commands import (
    CommandRecord,
    CommandTarget,
    command_target,
    read_command_target,
    record_command,
)
from csms.store.db import Database

log = structlog.get_logger("csms.commands")

# The `requested_by` of csms's own balancer (docs/load-balancing.md).
BALANCER = "balancer"


class ChargerLink(Protocol):
    """A live connection to a charger, as commands need it (`ocpp16.connection`)."""

    @property
    def calls_queued(self) -> int: ...

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]: ...


class RemoteLinks(Protocol):
    """Chargers held by other nodes (cluster mode, csms/cluster/forward.py)."""

    async def find(self, charge_point_id: str) -> ChargerLink | None: ...

    async def owner_in(self, session: AsyncSession, charge_point_id: str) -> str | None:
        """The node holding the charger per the registry, read in `session`."""
        ...

    def link(self, owner: str | None, charge_point_id: str) -> ChargerLink | None:
        """A link through `owner` (from `owner_in`), or None if that is no other node."""
        ...


@dataclass(frozen=True)
class Lookup:
    """What `Commands.check` reads about a charger, in one session (`Commands._lookup`).

    `owner_read`: cluster mode, the charger was not connected here at the time of the
    read, so the node holding it was read too (`owner`, None if none).
    """

    row: CommandTarget | None
    owner: str | None = None
    owner_read: bool = False


class Violation(Protocol):
    """A payload's first schema violation."""

    @property
    def description(self) -> str: ...

    @property
    def details(self) -> dict[str, Any]: ...


class RequestCheck(Protocol):
    """Checks a CALL payload against the OCPP 1.6 schema of its action."""

    def __call__(self, action: str, payload: Any) -> Violation | None: ...


@dataclass(frozen=True)
class CommandResult:
    command_id: int
    action: str
    charge_point_id: str
    response: dict[str, Any]


class CommandRunner(Protocol):
    """The seam for callers of `Commands.run` (MQTT ingress, the wallet's remote stops)."""

    async def run(
        self,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        requested_by: str | None = None,
    ) -> CommandResult: ...


class Commands:
    """Runs commands for the API and MQTT ingress with the checks of docs/api.md, "Commands"."""

    def __init__(
        self,
        *,
        chargers: Mapping[str, ChargerLink],
        database: Database,
        check_request: RequestCheck,
        clock: Callable[[], datetime],
        queue_size: int,
        call_timeout: float,
        metrics: Metrics | None = None,
        passwords: PasswordHasher | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._chargers = chargers
        self._passwords = passwords or PasswordHasher()
        self._database = database
        self._check_request = check_request
        self._clock = clock
        self._queue_size = queue_size
        self._call_timeout = call_timeout
        # Cluster mode: a charger not connected here may be connected to another node.
        self.remote: RemoteLinks | None = None

    def _lookup(self, charge_point_id: str) -> Callable[[AsyncSession], Awaitable[Lookup]]:
        """The reads of `check` as one query: in cluster mode the node holding a charger
        not connected here is read in the same session as its row (one session: one
        ping, BEGIN and ROLLBACK on PostgreSQL, not two)."""

        async def read(session: AsyncSession) -> Lookup:
            row = await command_target(session, charge_point_id)
            if row is None or self.remote is None or charge_point_id in self._chargers:
                return Lookup(row)
            owner = await self.remote.owner_in(session, charge_point_id)
            return Lookup(row, owner=owner, owner_read=True)

        return read

    async def check(
        self, charge_point_id: str, action: str, payload: Any, *, own: bool = False
    ) -> ChargerLink:
        """The order of refusals (docs/api.md, "Commands"): 404, then 422, then 409, then 429.

        `own`: csms's balancer sends it, and may use the profile ids it reserves.

        Raises:
            UnknownChargePoint, InvalidCommand, ChargerNotConnected, CommandQueueFull.
            StoreError: the charge point could not be read.
        """
        if self.remote is None:
            known = Lookup(await read_command_target(self._database, charge_point_id))
        else:
            known = await self._database.read(self._lookup(charge_point_id))
        row = known.row
        if row is None:
            raise UnknownChargePoint(f"charge point {charge_point_id} not found")
        if action not in CENTRAL_SYSTEM_ACTIONS:
            raise InvalidCommand(f"unknown action {action}")
        # Chargers in strict mode reject anything off-schema, so nothing invalid is sent.
        violation = self._check_request(action, payload)
        if violation is not None:
            raise InvalidCommand(violation.description, path=violation.details.get("path"))
        if action == "ChangeConfiguration":
            problem = configuration_problem(payload, security_profile=row.security_profile)
            if problem is not None:
                raise InvalidCommand(problem)
        if action == "SetChargingProfile":
            problem = await self._database.read(
                partial(profile_problem, charge_point_id=charge_point_id, payload=payload, own=own)
            )
            if problem is not None:
                raise InvalidCommand(problem)
        refusal = command_refusal(RegistrationStatus(row.registration_status), action)
        if refusal is not None:
            raise ChargerNotAccepted(refusal)
        connection = await self._connection(charge_point_id, known)
        if connection is None:
            raise ChargerNotConnected(f"charge point {charge_point_id} is not connected")
        if connection.calls_queued >= self._queue_size:
            raise CommandQueueFull(
                f"{connection.calls_queued} commands already waiting for {charge_point_id}",
                retry_after=math.ceil(self._call_timeout),
            )
        return connection

    async def _connection(self, charge_point_id: str, known: Lookup) -> ChargerLink | None:
        """The charger's connection here, else through the node holding it (cluster)."""
        connection = self._chargers.get(charge_point_id)
        if connection is not None or self.remote is None:
            return connection
        if known.owner_read:
            return self.remote.link(known.owner, charge_point_id)
        # Connected here at the lookup, gone since: where is it now?
        return await self.remote.find(charge_point_id)

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
            CommandTimeout, CommandRejected, InvalidAnswer, ChargerNotConnected: what the
                charger did.
            StoreError: the database failed.
        """
        own = requested_by == BALANCER
        connection = await self.check(charge_point_id, action, payload, own=own)
        return await self.send(
            connection, charge_point_id, action, payload, requested_by=requested_by
        )

    async def send(
        self,
        connection: ChargerLink,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        requested_by: str | None = None,
    ) -> CommandResult:
        """Send a command that passed `check` and record what happened."""
        new_password_hash = None
        if is_authorization_key(action, payload):
            # SecWP A01.FR.08: the new key is kept only as a salted hash, and only once the
            # charger accepted it (A01.FR.03/04); the request is recorded without it.
            key, salt = bytes.fromhex(payload["value"]), secrets.token_bytes(16)
            if self._passwords.scheme_for(key) is Scheme.SCRYPT:
                new_password_hash = await asyncio.to_thread(self._passwords.hash, key, salt=salt)
            else:
                new_password_hash = self._passwords.hash(key, salt=salt)
        record = partial(
            CommandRecord,
            charge_point_id=charge_point_id,
            action=action,
            request=redacted(action, payload),
            requested_by=requested_by,
            requested_at=self._clock(),
            new_password_hash=new_password_hash,
        )
        started = monotonic()
        try:
            response = await connection.call(action, payload)
        except (CommandRejected, InvalidAnswer) as exc:
            outcome = "callerror" if isinstance(exc, CommandRejected) else "invalid"
            self._metrics.command(action, outcome, monotonic() - started)
            await self._keep(
                record(
                    outcome=outcome,
                    completed_at=self._clock(),
                    error_code=exc.error_code,
                    error_description=exc.description,
                    error_details=exc.details if isinstance(exc, CommandRejected) else None,
                    response=exc.response if isinstance(exc, InvalidAnswer) else None,
                ),
                request=payload,
            )
            raise
        except (CommandTimeout, ChargerNotConnected) as exc:
            outcome = "timeout" if isinstance(exc, CommandTimeout) else "disconnected"
            self._metrics.command(action, outcome, monotonic() - started)
            await self._keep(
                record(outcome=outcome, completed_at=self._clock(), error_description=str(exc)),
                request=payload,
            )
            raise
        self._metrics.command(action, "ok", monotonic() - started)
        command_id = await self._keep(
            record(outcome="ok", completed_at=self._clock(), response=response), request=payload
        )
        log.info("command_completed", action=action, charge_point_id=charge_point_id)
        return CommandResult(
            command_id=command_id,
            action=action,
            charge_point_id=charge_point_id,
            response=response,
        )

    async def _keep(self, record: CommandRecord, *, request: dict[str, Any]) -> int:
        command_id: int = await self._database.writer.submit(
            partial(keep_command, record=record, request=request)
        )
        return command_id


async def profile_problem(
    session: AsyncSession, *, charge_point_id: str, payload: dict[str, Any], own: bool
) -> str | None:
    """Why a SetChargingProfile must not be sent, or None: what the schema cannot say, a
    limit the charger reported (OCPP 1.6 §9.4: ChargeProfileMaxStackLevel,
    ChargingScheduleMaxPeriods, ChargingScheduleAllowedChargingRateUnit), or a clash with
    the balancer's profiles on a circuit member."""
    profile = payload["csChargingProfiles"]
    try:
        profile_from_ocpp(payload["connectorId"], profile)
    except ProfileError as exc:
        return str(exc)
    known = await circuits.configuration(session, [charge_point_id])
    try:
        check_against_caps(profile, Caps.from_configuration(known.get(charge_point_id, {})))
    except CapsProblem as exc:
        return str(exc)
    if own:
        return None
    reserved = reserved_id(profile)
    if reserved is not None:
        return reserved
    members = await circuits.list_members(session)
    if any(m.charge_point_id == charge_point_id for m in members):
        return collides_with_balancer(profile)
    return None


async def keep_command(
    session: AsyncSession, *, record: CommandRecord, request: dict[str, Any]
) -> int:
    """Keep a command and its effects; `command.completed` when it reached the charger.

    `request` is the payload as sent (`record.request` is redacted); effects come only from
    a valid CALLRESULT.
    """
    effects: Sequence[Effect] = ()
    if record.outcome == "ok" and record.response is not None:
        effects = command_effects(
            record.action, request, record.response, received=record.completed_at
        )
    command_id, reservations = await record_command(session, record=record, effects=effects)
    events = reservation_events(reservations, at=record.completed_at)
    if record.outcome in ("ok", "callerror", "timeout", "invalid"):
        error = None
        if record.outcome != "ok":
            error = {
                "errorCode": record.error_code or "Timeout",
                "errorDescription": record.error_description or "",
            }
        events.insert(
            0,
            build.command_completed(
                record.charge_point_id,
                action=record.action,
                request=record.request,
                response=record.response if record.outcome == "ok" else None,
                error=error,
                at=record.completed_at,
            ),
        )
    await outbox.add_events(session, events, now=record.completed_at)
    return command_id
