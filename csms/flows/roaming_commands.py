"""Partners' commands (OCPI 2.2.1 mod_commands, CPO as Receiver) over the OCPP commands.

START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION and UNLOCK_CONNECTOR become
RemoteStartTransaction, RemoteStopTransaction, ReserveNow, CancelReservation and
UnlockConnector, run through the same command runner as the operator API
(csms.flows.commands). The partner gets a CommandResponse at once, and the CommandResult
later at its `response_url`, through the push queue, so it survives an outage of the
partner (mod_commands §Flow).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import format_utc
from csms.core.commands import answer_status
from csms.core.roaming import (
    OCPP_ACTIONS,
    CommandFailure,
    CommandResponseType,
    CommandResultType,
    CommandType,
    OcpiStatus,
    PushKind,
    command_decision,
    command_result,
    failure_of_call_error,
    id_tag_for,
)
from csms.core.roaming_hub import PartyRef
from csms.errors import (
    CommandError,
    CommandRejected,
    CommandTimeout,
    OcpiRequestError,
    StoreError,
    UnsafeTarget,
)
from csms.events.models_base import StrictModel, to_json_dict
from csms.events.models_ocpi import DisplayText
from csms.events.models_ocpi_roaming import (
    COMMAND_BODIES,
    CancelReservation,
    CommandResponse,
    CommandResult,
    ReserveNow,
    StartSession,
    StopSession,
    UnlockConnector,
)
from csms.flows.commands import ChargerLink, Commands
from csms.flows.partners import Caller, PartnerClient
from csms.flows.roaming_locations import EvseTarget, PartnerLocations, view_for
from csms.flows.roaming_tokens import TokenFlows, invalid_fields, owns
from csms.store import partners, tokens, transactions
from csms.store.commands import new_reservation_id
from csms.store.db import Database

log = structlog.get_logger("csms.ocpi")


@dataclass(frozen=True)
class _Order:
    """An OCPP command to send for an OCPI command the charger may get.

    `payload` is what `Commands.check` sees; `commit` keeps what the command needs (its
    token, how it was authorized, a reservation id) once the check passed, and gives the
    payload to send.
    """

    charge_point_id: str
    payload: dict[str, Any]
    commit: Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class _Refused:
    """The CPO's immediate answer is not ACCEPTED (mod_commands §CommandResponseType)."""

    result: CommandResponseType
    message: str


@dataclass(frozen=True)
class _Target:
    """The EVSE a command is for, and whether its location has several chargers."""

    evse: EvseTarget
    several: bool


class RoamingCommands:
    """The Commands module's Receiver interface."""

    def __init__(
        self,
        *,
        database: Database,
        commands: Commands,
        tokens: TokenFlows,
        views: PartnerLocations,
        client: PartnerClient,
        clock: Callable[[], datetime],
        call_timeout: float,
        on_result_queued: Callable[[], None],
        on_reservations_changed: Callable[[], None],
    ) -> None:
        self._database = database
        self._commands = commands
        self._tokens = tokens
        self._views = views
        self._client = client
        self._clock = clock
        self._timeout = math.ceil(call_timeout)
        self._on_result_queued = on_result_queued
        self._on_reservations_changed = on_reservations_changed
        self._running: set[asyncio.Task[None]] = set()

    async def receive(self, caller: Caller, command: str, raw: bytes) -> dict[str, Any]:
        """The CommandResponse for a command; the CommandResult follows at response_url.

        Raises:
            OcpiRequestError: 2001 for an unknown command, an invalid body or a
                response_url csms may not call; 2003 for a location, EVSE or connector
                the partner does not have (mod_commands, "UNLOCK_CONNECTOR Unknown
                Location": status 2003 with a REJECTED CommandResponse).
        """
        try:
            kind = CommandType(command)
        except ValueError:
            raise OcpiRequestError(
                f"unknown command {command}", ocpi_status=OcpiStatus.INVALID_PARAMETERS
            ) from None
        body = _parse(COMMAND_BODIES[kind.value], raw)
        response_url: str = body.response_url  # type: ignore[attr-defined]
        try:
            await self._client.check_target(response_url)
        except UnsafeTarget as exc:
            raise OcpiRequestError(
                f"response_url: {exc}", ocpi_status=OcpiStatus.INVALID_PARAMETERS
            ) from exc
        order = await self._prepare(caller, kind, body)
        if isinstance(order, _Refused):
            return _response(order.result, self._timeout, order.message)
        try:
            connection = await self._commands.check(
                order.charge_point_id, OCPP_ACTIONS[kind], order.payload
            )
        except CommandError as exc:
            # Unknown, offline or busy charger: the CPO cannot send it (mod_commands
            # §CommandResponseType enum: REJECTED "Command request rejected by the CPO").
            return _response(CommandResponseType.REJECTED, self._timeout, str(exc))
        payload = await order.commit()
        task = asyncio.create_task(
            self._run(caller, kind, response_url, connection, order.charge_point_id, payload),
            name=f"ocpi-command-{kind.value}",
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        log.info("ocpi_command_accepted", partner_id=caller.partner.id, command=kind.value)
        return _response(CommandResponseType.ACCEPTED, self._timeout)

    def close(self) -> None:
        """Stop waiting for chargers (shutdown): their results are not sent."""
        for task in self._running:
            task.cancel()

    # -- per command ------------------------------------------------------------------------

    async def _prepare(
        self, caller: Caller, kind: CommandType, body: StrictModel
    ) -> _Order | _Refused:
        if isinstance(body, StartSession):
            return await self._start(caller, body)
        if isinstance(body, StopSession):
            return await self._stop(caller, body)
        if isinstance(body, ReserveNow):
            return await self._reserve(caller, body)
        if isinstance(body, CancelReservation):
            return await self._cancel(caller, body)
        assert isinstance(body, UnlockConnector), kind
        return await self._unlock(caller, body)

    async def _start(self, caller: Caller, body: StartSession) -> _Order | _Refused:
        target = await self._evse(caller, body.location_id, body.evse_uid)
        token = to_json_dict(body.token)
        if isinstance(target, _Refused):
            return target
        if not owns(caller, token["country_code"], token["party_id"]):
            return _FOREIGN_TOKEN
        payload: dict[str, Any] = {"idTag": _id_tag(token)}
        if body.evse_uid is not None or target.several:
            payload["connectorId"] = target.evse.connector_id

        async def commit() -> dict[str, Any]:
            await self._keep_token(caller, token, target, body.authorization_reference)
            return payload

        return _Order(charge_point_id=target.evse.charge_point_id, payload=payload, commit=commit)

    async def _stop(self, caller: Caller, body: StopSession) -> _Order | _Refused:
        unknown = _Refused(CommandResponseType.UNKNOWN_SESSION, "unknown session")
        if not body.session_id.isdigit() or len(body.session_id) > 10:
            return unknown
        transaction_id = int(body.session_id)

        async def query(session: AsyncSession) -> tuple[Any, Any]:
            row = await transactions.get_transaction(session, transaction_id)
            token = None
            if row is not None and row.id_tag is not None:
                token = await tokens.token_by_id_tag(session, row.id_tag)
            return row, token

        row, token = await self._database.read(query)
        # mod_commands §CommandResponseType: "Session might not be from a customer of the
        # eMSP that send this request": only the token owner's sessions are known to it.
        if row is None or token is None or token.partner_id != caller.partner.id:
            return unknown
        if not owns(caller, token.country_code, token.party_id):
            # Through a hub, another client's session is unknown to this one.
            return unknown
        if row.stop_timestamp is not None:
            return _Refused(CommandResponseType.REJECTED, "the session has ended")
        payload = {"transactionId": row.id}
        return _Order(charge_point_id=row.charge_point_id, payload=payload, commit=_as(payload))

    async def _reserve(self, caller: Caller, body: ReserveNow) -> _Order | _Refused:
        target = await self._evse(caller, body.location_id, body.evse_uid)
        token = to_json_dict(body.token)
        if isinstance(target, _Refused):
            return target
        if not owns(caller, token["country_code"], token["party_id"]):
            return _FOREIGN_TOKEN
        cp = target.evse.charge_point_id
        # OCPP 1.6 §5.13: connectorId 0 reserves the charge point, whichever connector.
        connector_id = (
            target.evse.connector_id if body.evse_uid is not None or target.several else 0
        )
        id_tag = _id_tag(token)
        # Checked with a stand-in id: the real one is allocated only for a command that goes.
        probe: dict[str, Any] = {
            "connectorId": connector_id,
            "expiryDate": format_utc(body.expiry_date),
            "idTag": id_tag,
            "reservationId": 0,
        }

        async def commit() -> dict[str, Any]:
            now = self._clock()
            kept = await self._database.read(
                lambda s: partners.get_reservation(
                    s, partner_id=caller.partner.id, reservation_id=body.reservation_id
                )
            )
            if kept is not None and kept.charge_point_id == cp:
                # mod_commands §ReserveNow Object: the same reservation_id replaces it.
                reservation_id = kept.ocpp_reservation_id
            else:
                reservation_id = await self._database.writer.submit(
                    partial(
                        new_reservation_id,
                        charge_point_id=cp,
                        connector_id=connector_id,
                        id_tag=id_tag,
                        expiry=body.expiry_date,
                        now=now,
                    )
                )
            await self._database.writer.submit(
                partial(
                    partners.save_reservation,
                    partner_id=caller.partner.id,
                    reservation_id=body.reservation_id,
                    charge_point_id=cp,
                    ocpp_reservation_id=reservation_id,
                    now=now,
                )
            )
            await self._keep_token(caller, token, target, body.authorization_reference)
            return {**probe, "reservationId": reservation_id}

        return _Order(charge_point_id=cp, payload=probe, commit=commit)

    async def _cancel(self, caller: Caller, body: CancelReservation) -> _Order | _Refused:
        kept = await self._database.read(
            lambda s: partners.get_reservation(
                s, partner_id=caller.partner.id, reservation_id=body.reservation_id
            )
        )
        if kept is None:
            return _Refused(CommandResponseType.REJECTED, "unknown reservation")
        payload = {"reservationId": kept.ocpp_reservation_id}
        return _Order(charge_point_id=kept.charge_point_id, payload=payload, commit=_as(payload))

    async def _unlock(self, caller: Caller, body: UnlockConnector) -> _Order | _Refused:
        target = await self._evse(caller, body.location_id, body.evse_uid)
        if isinstance(target, _Refused):
            return target
        # One OCPI Connector "1" per virtual EVSE (docs/events.md, "Mapping decisions").
        if body.connector_id != "1":
            raise _unknown_location(f"unknown connector {body.connector_id}")
        payload = {"connectorId": target.evse.connector_id}
        return _Order(
            charge_point_id=target.evse.charge_point_id, payload=payload, commit=_as(payload)
        )

    # -- helpers ----------------------------------------------------------------------------

    async def _evse(
        self, caller: Caller, location_id: str, evse_uid: str | None
    ) -> _Target | _Refused:
        """The EVSE a command is for, among those the partner sees.

        Without an EVSE, the first AVAILABLE one of the location (mod_commands §StartSession
        Object: "If no EVSE is specified, the Charge Point can itself decide"; with one
        charger csms leaves the choice to it).

        Raises:
            OcpiRequestError: 2003, the partner has no such location or EVSE.
        """
        now = self._clock()

        async def query(session: AsyncSession) -> tuple[Any, dict[str, Any] | None]:
            state = await self._views.load(session, location_id)
            if state is None:
                return None, None
            kept = await partners.partner_locations(session, caller.partner.id)
            selection = partners.selection_of(caller.partner, kept)
            return state, view_for(state, selection=selection, sent=None, now=now)

        state, view = await self._database.read(query)
        if state is None or view is None:
            raise _unknown_location(f"unknown location {location_id}")
        shown = [evse["uid"] for evse in view.get("evses", ()) if evse["status"] != "REMOVED"]
        targets = {uid: state.evses[uid] for uid in shown if uid in state.evses}
        several = len({target.charge_point_id for target in targets.values()}) > 1
        if evse_uid is not None:
            if evse_uid not in targets:
                raise _unknown_location(f"unknown EVSE {evse_uid}")
            return _Target(evse=targets[evse_uid], several=several)
        free = [target for target in targets.values() if target.status == "AVAILABLE"]
        if not free:
            return _Refused(CommandResponseType.REJECTED, "no EVSE is available at the location")
        return _Target(evse=free[0], several=several)

    async def _keep_token(
        self, caller: Caller, token: dict[str, Any], target: _Target, reference: str | None
    ) -> None:
        """Keep the command's token (it goes into the Session and CDR) and that the eMSP
        authorized it, so the charger's Authorize and StartTransaction that follow are
        accepted without asking again."""
        row = await self._tokens.keep_from_command(caller, token)
        assert row.id is not None
        await self._tokens.record(
            token_id=row.id,
            charge_point_id=target.evse.charge_point_id,
            decision=command_decision(tokens.token_state(row), authorization_reference=reference),
        )

    async def _run(
        self,
        caller: Caller,
        kind: CommandType,
        response_url: str,
        connection: ChargerLink,
        charge_point_id: str,
        payload: dict[str, Any],
    ) -> None:
        """Send the OCPP command, then queue its CommandResult for the partner."""
        action = OCPP_ACTIONS[kind]
        status: str | None = None
        failure: CommandFailure | None = None
        try:
            # Checked in `receive`: sent without checking again (as the API's reserve).
            sent = await self._commands.send(
                connection,
                charge_point_id,
                action,
                payload,
                requested_by=f"ocpi:{caller.partner.id}",
            )
            status = answer_status(sent.response)
        except CommandTimeout:
            failure = CommandFailure.TIMEOUT
        except CommandRejected as exc:
            failure = failure_of_call_error(exc.error_code)
        except (CommandError, StoreError):
            failure = CommandFailure.FAILED
        finally:
            if kind is CommandType.RESERVE_NOW:
                self._on_reservations_changed()
        result = command_result(kind, answer_status=status, failure=failure)
        await self._queue_result(caller.partner.id, response_url, result, to=caller.requester.party)

    async def _queue_result(
        self,
        partner_id: str,
        response_url: str,
        result: CommandResultType,
        *,
        to: PartyRef | None = None,
    ) -> None:
        """Queue the CommandResult, addressed to the party that sent the command (through a
        hub: the hub's client, transport_and_format §Party to Party via Hub)."""
        body = to_json_dict(CommandResult(result=result))
        now = self._clock()
        await self._database.writer.submit(
            partial(
                partners.enqueue,
                partner_id=partner_id,
                key=f"result:{uuid.uuid4()}",
                kind=PushKind.COMMAND_RESULT,
                body=body,
                url=response_url,
                now=now,
                to=to,
            )
        )
        log.info("ocpi_command_result", partner_id=partner_id, result=result.value)
        self._on_result_queued()


# mod_commands §StartSession Object: "An eMSP sending a StartSession SHALL only use Token
# that are owned by this eMSP" (and §ReserveNow Object likewise).
_FOREIGN_TOKEN = _Refused(CommandResponseType.REJECTED, "the token is not yours")


def _id_tag(token: dict[str, Any]) -> str:
    return id_tag_for(
        country_code=token["country_code"],
        party_id=token["party_id"],
        uid=token["uid"],
        token_type=token["type"],
    )


def _as(payload: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A commit with nothing to keep."""

    async def commit() -> dict[str, Any]:
        return payload

    return commit


def _parse(model: type[StrictModel], raw: bytes) -> StrictModel:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OcpiRequestError(
            "the body is not JSON", ocpi_status=OcpiStatus.INVALID_PARAMETERS, http_status=400
        ) from exc
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise OcpiRequestError(
            invalid_fields(exc), ocpi_status=OcpiStatus.INVALID_PARAMETERS
        ) from exc


def _response(
    result: CommandResponseType, timeout: int, message: str | None = None
) -> dict[str, Any]:
    """mod_commands §CommandResponse Object, with a message in English when there is one."""
    texts = None if message is None else [DisplayText(language="en", text=message[:512])]
    return to_json_dict(CommandResponse(result=result, timeout=timeout, message=texts))


def _unknown_location(message: str) -> OcpiRequestError:
    return OcpiRequestError(
        message,
        ocpi_status=OcpiStatus.UNKNOWN_LOCATION,
        data=to_json_dict(
            CommandResponse(
                result=CommandResponseType.REJECTED,
                timeout=0,
                message=None,
            )
        ),
    )
