"""CSMS -> charger commands: which exist, which may be sent, and what an answer changes.

The command API takes OCPP 1.6 payloads as they go on the wire (docs/api.md, "Commands"),
so this module reads their keys once and turns an accepted answer into typed *effects*
that the store applies. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.core.clock import parse_timestamp
from csms.core.security import authorization_key_problem

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

# Answers after which the charger holds the configuration we asked for.
_CONFIGURATION_TAKEN = frozenset({"Accepted", "RebootRequired"})


def is_authorization_key(action: str, payload: dict[str, Any]) -> bool:
    """Whether the command sets the charger's Basic auth password (SecWP A01)."""
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


# -- effects: what an answer changes in our data --


@dataclass(frozen=True)
class ProfileInstalled:
    """SetChargingProfile Accepted: the charger now holds this profile."""

    connector_id: int
    charging_profile_id: int
    stack_level: int
    purpose: str
    transaction_id: int | None
    profile: dict[str, Any]


@dataclass(frozen=True)
class ProfilesCleared:
    """ClearChargingProfile Accepted, with the request's filters (None: not given)."""

    charging_profile_id: int | None = None
    connector_id: int | None = None
    purpose: str | None = None
    stack_level: int | None = None


@dataclass(frozen=True)
class ReservationAccepted:
    """ReserveNow Accepted: the reservation is active (and replaces one with the same id)."""

    reservation_id: int
    connector_id: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime


@dataclass(frozen=True)
class ReservationRefused:
    """ReserveNow not Accepted: a reservation id csms allocated for it is released."""

    reservation_id: int


@dataclass(frozen=True)
class ReservationCanceled:
    """CancelReservation Accepted."""

    reservation_id: int


@dataclass(frozen=True)
class LocalListVersion:
    """The charger's local authorization list version (SendLocalList, GetLocalListVersion)."""

    version: int


@dataclass(frozen=True)
class ConfigurationValue:
    """A configuration key the charger holds (ChangeConfiguration taken, GetConfiguration)."""

    key: str
    value: str | None
    readonly: bool | None


@dataclass(frozen=True)
class PasswordRotated:
    """ChangeConfiguration(AuthorizationKey) Accepted: the new key's hash replaces the old."""


Effect = (
    ProfileInstalled
    | ProfilesCleared
    | ReservationAccepted
    | ReservationRefused
    | ReservationCanceled
    | LocalListVersion
    | ConfigurationValue
    | PasswordRotated
)


def command_effects(
    action: str, request: dict[str, Any], response: dict[str, Any], *, received: datetime
) -> Sequence[Effect]:
    """What the charger's CALLRESULT `response` to `request` changes in our data."""
    decode = _EFFECTS.get(action)
    return () if decode is None else decode(request, response, received)


def _set_profile(request: dict[str, Any], response: dict[str, Any], _: datetime) -> list[Effect]:
    if response.get("status") != "Accepted":
        return []
    profile = request["csChargingProfiles"]
    return [
        ProfileInstalled(
            connector_id=request["connectorId"],
            charging_profile_id=profile["chargingProfileId"],
            stack_level=profile["stackLevel"],
            purpose=profile["chargingProfilePurpose"],
            transaction_id=profile.get("transactionId"),
            profile=profile,
        )
    ]


def _clear_profile(request: dict[str, Any], response: dict[str, Any], _: datetime) -> list[Effect]:
    if response.get("status") != "Accepted":
        return []
    return [
        ProfilesCleared(
            charging_profile_id=request.get("id"),
            connector_id=request.get("connectorId"),
            purpose=request.get("chargingProfilePurpose"),
            stack_level=request.get("stackLevel"),
        )
    ]


def _reserve_now(
    request: dict[str, Any], response: dict[str, Any], received: datetime
) -> list[Effect]:
    if response.get("status") != "Accepted":
        return [ReservationRefused(reservation_id=request["reservationId"])]
    return [
        ReservationAccepted(
            reservation_id=request["reservationId"],
            connector_id=request["connectorId"],
            id_tag=request["idTag"],
            parent_id_tag=request.get("parentIdTag"),
            expiry=parse_timestamp(request["expiryDate"], received=received).value,
        )
    ]


def _cancel_reservation(
    request: dict[str, Any], response: dict[str, Any], _: datetime
) -> list[Effect]:
    if response.get("status") != "Accepted":
        return []
    return [ReservationCanceled(reservation_id=request["reservationId"])]


def _send_local_list(
    request: dict[str, Any], response: dict[str, Any], _: datetime
) -> list[Effect]:
    if response.get("status") != "Accepted":
        return []
    return [LocalListVersion(version=request["listVersion"])]


def _get_local_list_version(
    _request: dict[str, Any], response: dict[str, Any], _: datetime
) -> list[Effect]:
    return [LocalListVersion(version=response["listVersion"])]


def _change_configuration(
    request: dict[str, Any], response: dict[str, Any], _: datetime
) -> list[Effect]:
    status = response.get("status")
    if request["key"] == "AuthorizationKey":
        # SecWP A01.FR.03-05: only an Accepted key replaces the old one; on Rejected or
        # NotSupported the old credentials keep working.
        return [PasswordRotated()] if status == "Accepted" else []
    if status not in _CONFIGURATION_TAKEN:
        return []
    return [ConfigurationValue(key=request["key"], value=request["value"], readonly=None)]


def _get_configuration(
    _request: dict[str, Any], response: dict[str, Any], _: datetime
) -> list[Effect]:
    return [
        ConfigurationValue(key=item["key"], value=item.get("value"), readonly=item["readonly"])
        for item in response.get("configurationKey", [])
    ]


_EFFECTS = {
    "SetChargingProfile": _set_profile,
    "ClearChargingProfile": _clear_profile,
    "ReserveNow": _reserve_now,
    "CancelReservation": _cancel_reservation,
    "SendLocalList": _send_local_list,
    "GetLocalListVersion": _get_local_list_version,
    "ChangeConfiguration": _change_configuration,
    "GetConfiguration": _get_configuration,
}


def answer_status(response: dict[str, Any]) -> str | None:
    """The `status` of a charger's answer to a command, when it has one (OCPP 1.6 §6: the
    .conf of RemoteStart/StopTransaction, ReserveNow, CancelReservation, UnlockConnector)."""
    status = response.get("status")
    return status if isinstance(status, str) else None
