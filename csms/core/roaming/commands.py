"""OCPI commands (mod_commands) as OCPP 1.6 calls, and their results."""

from __future__ import annotations

from enum import StrEnum

from csms.core.roaming.protocol import CommandResultType, CommandType

COMMAND_WINDOW_SECONDS = 15 * 60
"""mod_commands §StartSession Object: no real-time authorization of the same RFID token at
the same charge point within 15 minutes of a START_SESSION (or RESERVE_NOW)."""

# What each OCPP answer status means for the command's result.
_RESULTS: dict[CommandType, dict[str, CommandResultType]] = {
    CommandType.START_SESSION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.REJECTED,
    },
    CommandType.STOP_SESSION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.REJECTED,
    },
    # OCPP 1.6 §7.39 ReservationStatus.
    CommandType.RESERVE_NOW: {
        "Accepted": CommandResultType.ACCEPTED,
        "Faulted": CommandResultType.EVSE_INOPERATIVE,
        "Occupied": CommandResultType.EVSE_OCCUPIED,
        "Rejected": CommandResultType.REJECTED,
        "Unavailable": CommandResultType.EVSE_INOPERATIVE,
    },
    # OCPP 1.6 §7.6 CancelReservationStatus: Rejected means "no reservation matching".
    CommandType.CANCEL_RESERVATION: {
        "Accepted": CommandResultType.ACCEPTED,
        "Rejected": CommandResultType.UNKNOWN_RESERVATION,
    },
    # OCPP 1.6 §7.43 UnlockStatus.
    CommandType.UNLOCK_CONNECTOR: {
        "Unlocked": CommandResultType.ACCEPTED,
        "UnlockFailed": CommandResultType.FAILED,
        "NotSupported": CommandResultType.NOT_SUPPORTED,
    },
}

OCPP_ACTIONS = {
    CommandType.START_SESSION: "RemoteStartTransaction",
    CommandType.STOP_SESSION: "RemoteStopTransaction",
    CommandType.RESERVE_NOW: "ReserveNow",
    CommandType.CANCEL_RESERVATION: "CancelReservation",
    CommandType.UNLOCK_CONNECTOR: "UnlockConnector",
}


class CommandFailure(StrEnum):
    """How an OCPP command ended without a usable answer (csms.errors.CommandError)."""

    TIMEOUT = "timeout"
    NOT_SUPPORTED = "not_supported"
    FAILED = "failed"


def command_result(
    command: CommandType, *, answer_status: str | None, failure: CommandFailure | None
) -> CommandResultType:
    """The CommandResult for what the charger answered to the OCPP command."""
    if failure is CommandFailure.TIMEOUT:
        return CommandResultType.TIMEOUT
    if failure is CommandFailure.NOT_SUPPORTED:
        return CommandResultType.NOT_SUPPORTED
    if failure is not None or answer_status is None:
        return CommandResultType.FAILED
    return _RESULTS[command].get(answer_status, CommandResultType.FAILED)


def failure_of_call_error(error_code: str) -> CommandFailure:
    """A CALLERROR's code as a command failure (OCPP-J §4.2.3)."""
    if error_code in ("NotSupported", "NotImplemented"):
        return CommandFailure.NOT_SUPPORTED
    return CommandFailure.FAILED
