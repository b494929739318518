"""Connector statuses: derived from the connector's state, reported by StatusNotification
when they change, and ChangeAvailability."""

from __future__ import annotations

from typing import Any, Protocol

from .model import Connector, ConnectorStatus, FaultInfo, SessionState
from .ocppj import CallError
from .services import Services

__all__ = ["StatusReporter", "StatusServices", "derive_status"]


class StatusServices(Services, Protocol):
    """What status reporting needs besides the common services."""

    @property
    def connected(self) -> bool: ...

    @property
    def boot_required(self) -> bool:
        """Whether a BootNotification must be accepted before anything else is sent."""
        ...


def derive_status(
    connector: Connector, whole_charger: Connector
) -> tuple[ConnectorStatus, FaultInfo | None]:
    """A connector's status (OCPP 1.6 §4.9) and the fault behind it, if any.

    Connector 0 stands for the charger; its fault or unavailability covers every connector.
    """
    if connector.id == 0:
        if whole_charger.fault:
            return ConnectorStatus.faulted, whole_charger.fault
        if not whole_charger.operative:
            return ConnectorStatus.unavailable, None
        return ConnectorStatus.available, None
    fault = connector.fault or whole_charger.fault
    if fault:
        return ConnectorStatus.faulted, fault
    session = connector.session
    if session is not None and session.state is SessionState.CHARGING:
        if session.power_w > 0.0:
            return ConnectorStatus.charging, None
        if session.limit_w <= 0.0:
            return ConnectorStatus.suspended_evse, None
        return ConnectorStatus.suspended_ev, None
    if not connector.operative or not whole_charger.operative:
        return ConnectorStatus.unavailable, None
    if connector.plugged:
        if session is not None and session.state is SessionState.STOPPED:
            return ConnectorStatus.finishing, None
        return ConnectorStatus.preparing, None
    if connector.reservation is not None:
        return ConnectorStatus.reserved, None
    return ConnectorStatus.available, None


class StatusReporter:
    """Keeps each connector's status current and tells the central system of changes."""

    def __init__(self, services: StatusServices, connectors: list[Connector], *, vendor: str):
        self._services = services
        self._connectors = connectors
        self._vendor = vendor  # vendorId of StatusNotifications with a fault

    def refresh(self, connector: Connector) -> None:
        """Re-derive a connector's status; report it if it changed."""
        status, fault = derive_status(connector, self._connectors[0])
        if status is connector.status and fault == connector.status_fault:
            return
        connector.status = status
        connector.status_fault = fault
        self.notify(connector)

    def refresh_all(self) -> None:
        """Re-derive every status, connector 0 first."""
        for connector in self._connectors:
            self.refresh(connector)

    def refresh_after_reply(self, connector: Connector) -> None:
        """Re-derive a status once the answer to the current CALL is sent."""
        self._services.after_reply(lambda _now: self.refresh(connector))

    def notify(self, connector: Connector, *, force: bool = False) -> None:
        """StatusNotification for a connector (``force``: even before boot is accepted, as
        TriggerMessage asks)."""
        services = self._services
        if not services.connected or (services.boot_required and not force):
            return
        fault = connector.status_fault
        payload: dict[str, Any] = {
            "connectorId": connector.id,
            "status": connector.status.value,
            "errorCode": fault.error_code if fault else "NoError",
            "timestamp": services.clock.stamp(services.now),
        }
        if fault is not None:
            if fault.vendor_error_code:
                payload["vendorErrorCode"] = fault.vendor_error_code
            if fault.info:
                payload["info"] = fault.info
            payload["vendorId"] = self._vendor
        reported_state = (connector.status, fault)

        def reported(result: dict[str, Any] | None, error: CallError | None) -> None:
            if result is not None:
                connector.reported = reported_state

        services.send_call("StatusNotification", payload, reported)

    def report_changes(self) -> None:
        """Report every status that differs from the last one the central system took."""
        for connector in self._connectors:
            if (connector.status, connector.status_fault) != connector.reported:
                self.notify(connector)

    def forget_reported(self) -> None:
        """After a reboot the central system must hear every status again."""
        for connector in self._connectors:
            connector.reported = None

    def change_availability(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ChangeAvailability: Scheduled while a transaction runs (OCPP 1.6 §5.2)."""
        connector_id = payload["connectorId"]
        operative = payload["type"] == "Operative"
        if not 0 <= connector_id < len(self._connectors):
            return {"status": "Rejected"}
        connectors = self._connectors
        targets = connectors if connector_id == 0 else [connectors[connector_id]]
        scheduled = False
        for connector in targets:
            if operative:
                connector.operative = True
                connector.pending_inoperative = False
            elif connector.session is not None and connector.session.state is SessionState.CHARGING:
                connector.pending_inoperative = True
                scheduled = True
            else:
                connector.operative = False
        self._services.after_reply(lambda _now: self.refresh_all())
        return {"status": "Scheduled" if scheduled else "Accepted"}
