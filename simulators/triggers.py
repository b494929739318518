"""TriggerMessage (OCPP 1.6 §5.17) and ExtendedTriggerMessage (SecWP §5.5): the central
system asks for a message, which follows the answer."""

from __future__ import annotations

from typing import Any

from .boot import Boot
from .firmware import Diagnostics, FirmwareUpdates
from .metering import Metering
from .model import Connector
from .security import SecurityActions
from .services import Services
from .status import StatusReporter

__all__ = ["Triggers"]


class Triggers:
    """Sends what a (Extended)TriggerMessage asks for, once the answer is out."""

    def __init__(
        self,
        services: Services,
        connectors: list[Connector],
        *,
        boot: Boot,
        status: StatusReporter,
        metering: Metering,
        firmware: FirmwareUpdates,
        diagnostics: Diagnostics,
        security: SecurityActions,
    ) -> None:
        self._services = services
        self._connectors = connectors
        self._boot = boot
        self._status = status
        self._metering = metering
        self._firmware = firmware
        self._diagnostics = diagnostics
        self._security = security

    def trigger_message(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """TriggerMessage: Accepted, Rejected (no such connector) or NotImplemented."""
        message = payload["requestedMessage"]
        connector_id = payload.get("connectorId")
        last_connector = len(self._connectors) - 1
        if connector_id is not None and not 0 <= connector_id <= last_connector:
            return {"status": "Rejected"}
        after_reply = self._services.after_reply
        if message == "BootNotification":
            after_reply(lambda _later: self._boot.send_triggered())
        elif message == "Heartbeat":
            after_reply(lambda _later: self._services.send_call("Heartbeat", {}))
        elif message == "FirmwareStatusNotification":
            after_reply(lambda _later: self._firmware.notify())
        elif message == "DiagnosticsStatusNotification":
            after_reply(lambda _later: self._diagnostics.notify())
        elif message == "StatusNotification":
            first = 0 if connector_id is None else connector_id
            last = last_connector if connector_id is None else connector_id

            def statuses(_later: float) -> None:
                for index in range(first, last + 1):
                    self._status.notify(self._connectors[index], force=True)

            after_reply(statuses)
        elif message == "MeterValues":
            first = 1 if connector_id is None else connector_id
            last = last_connector if connector_id is None else connector_id

            def meter_values(later: float) -> None:
                for index in range(first, last + 1):
                    self._metering.send_triggered(index, later)

            after_reply(meter_values)
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def extended_trigger_message(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ExtendedTriggerMessage: the TriggerMessage messages, plus a certificate signing
        request, LogStatusNotification and SignedFirmwareStatusNotification."""
        message = payload["requestedMessage"]
        connector_id = payload.get("connectorId")
        if connector_id is not None and not 1 <= connector_id < len(self._connectors):
            return {"status": "Rejected"}  # SecWP §5.5: connectorId > 0
        after_reply = self._services.after_reply
        if message == "SignChargePointCertificate":
            # SecWP A02.FR.02: a new key pair after ExtendedTriggerMessage.conf.
            after_reply(self._security.request_certificate)
        elif message == "LogStatusNotification":
            after_reply(lambda _later: self._diagnostics.notify_log())
        elif message == "FirmwareStatusNotification":
            after_reply(lambda _later: self._firmware.notify_signed(triggered=True))
        else:  # BootNotification, Heartbeat, MeterValues, StatusNotification
            return self.trigger_message(payload, now)
        return {"status": "Accepted"}
