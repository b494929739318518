"""Command routes: the generic OCPP command endpoint and the operator conveniences over it."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse

from csms.api.auth import require
from csms.api.context import (
    ApiContext,
    IdentityPath,
    Limit,
    Offset,
    TransactionIdPath,
    not_found,
)
from csms.api.schemas import (
    CommandOut,
    CommandRecordOut,
    Page,
    ReserveIn,
    ResetIn,
    StartSessionIn,
    StopTransactionIn,
    StopTransactionOut,
    UnlockIn,
)
from csms.api.views import transaction_out
from csms.core.access import Scope
from csms.core.clock import format_utc
from csms.core.commands import CENTRAL_SYSTEM_ACTIONS
from csms.errors import CommandError, CommandQueueFull
from csms.flows.commands import CommandResult
from csms.store import transactions
from csms.store.commands import list_commands, new_reservation_id
from csms.store.tables import Command

RequestedBy = Annotated[
    str | None,
    Header(alias="X-Requested-By", max_length=255, description="who asked, kept with the command"),
]

_EXAMPLES = {
    "Reset": {"summary": "Soft reset", "value": {"type": "Soft"}},
    "RemoteStartTransaction": {
        "summary": "Start charging on connector 1",
        "value": {"connectorId": 1, "idTag": "CARD-0001"},
    },
    "ChangeConfiguration": {
        "summary": "Heartbeat every 5 minutes",
        "value": {"key": "HeartbeatInterval", "value": "300"},
    },
    "TriggerMessage": {
        "summary": "Ask for a status",
        "value": {"requestedMessage": "StatusNotification"},
    },
    "ExtendedTriggerMessage": {
        "summary": "Ask for a new charger certificate (SecWP A02)",
        "value": {"requestedMessage": "SignChargePointCertificate"},
    },
    "GetLog": {
        "summary": "Upload the security log (SecWP N01)",
        "value": {
            "logType": "SecurityLog",
            "requestId": 1,
            "log": {"remoteLocation": "https://logs.example.com/upload"},
        },
    },
}

_PROFILE_EXAMPLE = {
    "summary": "16 A on connector 1 by default",
    "value": {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
            },
        },
    },
}
_EXAMPLES["SetChargingProfile"] = _PROFILE_EXAMPLE

COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "unknown charge point"},
    409: {"description": "the charge point is not connected"},
    422: {"description": "unknown action, or a payload invalid against the OCPP 1.6 schema"},
    429: {"description": "too many commands waiting for this charger; see Retry-After"},
    502: {
        "description": "CALLERROR from the charger (errorCode, errorDescription, errorDetails), "
        "or a CALLRESULT that breaks the OCPP 1.6 schema (errorCode, errorDescription)"
    },
    504: {"description": "no answer within ocpp.call_timeout"},
}


async def command_error_response(_request: Request, exc: Exception) -> JSONResponse:
    """The HTTP status for each way a command can fail (docs/api.md, "Commands")."""
    assert isinstance(exc, CommandError)
    headers: dict[str, str] = {}
    body: dict[str, Any] = {"detail": str(exc), **exc.fields}
    if isinstance(exc, CommandQueueFull):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(status_code=exc.status, content=body, headers=headers)


async def run_command(
    ctx: ApiContext,
    charge_point_id: str,
    action: str,
    payload: dict[str, Any],
    requested_by: str | None,
) -> CommandResult:
    """Run a command; a CommandError becomes its HTTP answer in `command_error_response`."""
    return await ctx.commands.run(
        charge_point_id, action, payload, requested_by=requested_by or "api"
    )


def _command_out(result: CommandResult) -> CommandOut:
    return CommandOut(
        action=result.action, charge_point_id=result.charge_point_id, response=result.response
    )


def _record_out(row: Command) -> CommandRecordOut:
    assert row.id is not None
    assert row.requested_at is not None
    assert row.completed_at is not None
    return CommandRecordOut(
        command_id=row.id,
        charge_point_id=row.charge_point_id,
        action=row.action,
        request=row.request,
        outcome=row.outcome,
        response=row.response,
        error_code=row.error_code,
        error_description=row.error_description,
        error_details=row.error_details,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        completed_at=row.completed_at,
        duration_ms=(row.completed_at - row.requested_at).total_seconds() * 1000,
    )


def add_command_routes(router: APIRouter, ctx: ApiContext) -> None:
    actions = "|".join(sorted(CENTRAL_SYSTEM_ACTIONS))

    @router.post(
        "/charge-points/{charge_point_id}/commands/{action}",
        dependencies=[require(Scope.COMMANDS)],
        tags=["commands"],
        summary="Send any OCPP 1.6 Central System -> Charge Point action",
        responses=COMMAND_RESPONSES,
    )
    async def send_command(
        charge_point_id: IdentityPath,
        action: Annotated[str, Path(description=f"one of {actions}")],
        payload: Annotated[
            dict[str, Any],
            Body(description="the OCPP 1.6 request payload", openapi_examples=_EXAMPLES),
        ],
        requested_by: RequestedBy = None,
    ) -> CommandOut:
        """The body is validated against the action's OCPP 1.6 schema before anything is sent."""
        return _command_out(await run_command(ctx, charge_point_id, action, payload, requested_by))

    @router.get(
        "/charge-points/{charge_point_id}/commands",
        dependencies=[require(Scope.READ)],
        tags=["commands"],
    )
    async def list_charge_point_commands(
        charge_point_id: IdentityPath, limit: Limit = 50, offset: Offset = 0
    ) -> Page[CommandRecordOut]:
        """Every command sent to the charger, newest first."""
        rows, total = await ctx.read(
            lambda session: list_commands(
                session, charge_point_id=charge_point_id, limit=limit, offset=offset
            )
        )
        return Page[CommandRecordOut](items=[_record_out(row) for row in rows], total=total)

    @router.post(
        "/sessions/start",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def start_session(body: StartSessionIn, requested_by: RequestedBy = None) -> CommandOut:
        """RemoteStartTransaction for a charger, connector and id tag."""
        payload: dict[str, Any] = {"idTag": body.id_tag}
        if body.connector_id is not None:
            payload["connectorId"] = body.connector_id
        result = await run_command(
            ctx, body.charge_point_id, "RemoteStartTransaction", payload, requested_by
        )
        return _command_out(result)

    @router.post(
        "/transactions/{transaction_id}/stop",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def stop_transaction(
        transaction_id: TransactionIdPath,
        body: StopTransactionIn,
        requested_by: RequestedBy = None,
    ) -> StopTransactionOut:
        """RemoteStopTransaction; with force, the transaction ends in our data at once."""
        row = await ctx.read(lambda session: transactions.get_transaction(session, transaction_id))
        if row is None:
            raise not_found("transaction")
        if row.stop_timestamp is not None and not body.force:
            raise HTTPException(status.HTTP_409_CONFLICT, "transaction already completed")
        response: dict[str, Any] | None = None
        if body.force:
            await ctx.sessions.force_stop(transaction_id=transaction_id, now=ctx.clock())
            response = await _try_remote_stop(
                ctx, row.charge_point_id, transaction_id, requested_by
            )
        else:
            payload = {"transactionId": transaction_id}
            result = await run_command(
                ctx, row.charge_point_id, "RemoteStopTransaction", payload, requested_by
            )
            response = result.response
        after = await ctx.read(
            lambda session: transactions.get_transaction(session, transaction_id)
        )
        if after is None:  # deleted meanwhile
            raise not_found("transaction")
        return StopTransactionOut(
            transaction_id=transaction_id,
            forced=body.force,
            response=response,
            transaction=transaction_out(after),
        )

    @router.post(
        "/charge-points/{charge_point_id}/reset",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def reset(
        charge_point_id: IdentityPath, body: ResetIn, requested_by: RequestedBy = None
    ) -> CommandOut:
        """Reset (Soft or Hard)."""
        payload = {"type": body.type.value}
        return _command_out(await run_command(ctx, charge_point_id, "Reset", payload, requested_by))

    @router.post(
        "/charge-points/{charge_point_id}/unlock",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def unlock(
        charge_point_id: IdentityPath, body: UnlockIn, requested_by: RequestedBy = None
    ) -> CommandOut:
        """UnlockConnector."""
        payload = {"connectorId": body.connector_id}
        result = await run_command(ctx, charge_point_id, "UnlockConnector", payload, requested_by)
        return _command_out(result)

    @router.post(
        "/charge-points/{charge_point_id}/reserve",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def reserve(
        charge_point_id: IdentityPath, body: ReserveIn, requested_by: RequestedBy = None
    ) -> CommandOut:
        """ReserveNow with a reservationId allocated by the CSMS; expiry is enforced here."""
        connection = await ctx.commands.check(charge_point_id, "ReserveNow", _reserve_probe(body))
        reservation_id = await ctx.write(
            lambda session: new_reservation_id(
                session,
                charge_point_id=charge_point_id,
                connector_id=body.connector_id,
                id_tag=body.id_tag,
                expiry=body.expiry_date,
                now=ctx.clock(),
            )
        )
        payload = {**_reserve_probe(body), "reservationId": reservation_id}
        try:
            # Checked above, before the id was allocated: sent without checking again.
            result = await ctx.commands.send(
                connection,
                charge_point_id,
                "ReserveNow",
                payload,
                requested_by=requested_by or "api",
            )
        finally:
            ctx.on_reservations_changed()
        return _command_out(result)

    @router.post(
        "/charge-points/{charge_point_id}/charging-profile",
        dependencies=[require(Scope.COMMANDS)],
        tags=["operator actions"],
        responses=COMMAND_RESPONSES,
    )
    async def set_charging_profile(
        charge_point_id: IdentityPath,
        payload: Annotated[
            dict[str, Any],
            Body(
                description="the SetChargingProfile.req payload",
                openapi_examples={"profile": _PROFILE_EXAMPLE},
            ),
        ],
        requested_by: RequestedBy = None,
    ) -> CommandOut:
        """SetChargingProfile; the accepted profile is kept per charger and connector."""
        result = await run_command(
            ctx, charge_point_id, "SetChargingProfile", payload, requested_by
        )
        return _command_out(result)


def _reserve_probe(body: ReserveIn) -> dict[str, Any]:
    """The ReserveNow payload without its id (checked before an id is allocated)."""
    payload: dict[str, Any] = {
        "connectorId": body.connector_id,
        "idTag": body.id_tag,
        "expiryDate": format_utc(body.expiry_date),
        "reservationId": 0,
    }
    if body.parent_id_tag is not None:
        payload["parentIdTag"] = body.parent_id_tag
    return payload


async def _try_remote_stop(
    ctx: ApiContext, charge_point_id: str, transaction_id: int, requested_by: str | None
) -> dict[str, Any] | None:
    """Ask the charger to stop too; a forced stop does not depend on its answer."""
    try:
        result = await ctx.commands.run(
            charge_point_id,
            "RemoteStopTransaction",
            {"transactionId": transaction_id},
            requested_by=requested_by or "api",
        )
    except CommandError:
        return None
    return result.response
