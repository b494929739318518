"""Reservations: ReserveNow, CancelReservation, and their expiry (OCPP 1.6 §3.13)."""

from __future__ import annotations

from typing import Any

from .model import Connector, Reservation
from .services import Services
from .smart import parse_time
from .status import StatusReporter
from .timers import Timer

__all__ = ["Reservations"]


class Reservations:
    """Which connector is held for which tag, and until when."""

    def __init__(
        self, services: Services, connectors: list[Connector], status: StatusReporter
    ) -> None:
        self._services = services
        self._connectors = connectors
        self._status = status
        services.timers.handle(Timer.RESERVATION_EXPIRY, self._expired)

    def reserve_now(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """ReserveNow; a reservation id already in use elsewhere moves to this connector."""
        connector_id = payload["connectorId"]
        services = self._services
        if connector_id == 0 and not services.config.get_bool("ReserveConnectorZeroSupported"):
            return {"status": "Rejected"}
        connectors = self._connectors
        if not 1 <= connector_id < len(connectors):
            return {"status": "Rejected"}
        connector = connectors[connector_id]
        whole_charger = connectors[0]
        reservation_id = payload["reservationId"]
        if connector.fault or whole_charger.fault:
            return {"status": "Faulted"}
        if not connector.operative or not whole_charger.operative:
            return {"status": "Unavailable"}
        held = connector.reservation
        if (
            connector.session is not None
            or connector.plugged
            or (held is not None and held.reservation_id != reservation_id)
        ):
            return {"status": "Occupied"}
        try:
            expiry = parse_time(payload["expiryDate"])  # wall-clock time
        except ValueError:
            return {"status": "Rejected"}
        for other in connectors[1:]:
            if other.reservation and other.reservation.reservation_id == reservation_id:
                self._release(other)
        clock = services.clock
        connector.reservation = Reservation(
            reservation_id, payload["idTag"], payload.get("parentIdTag"), clock.sim_at_wall(expiry)
        )
        services.timers.start(
            Timer.RESERVATION_EXPIRY, max(now, clock.real_at_wall(expiry)), connector.id
        )
        self._status.refresh_after_reply(connector)
        return {"status": "Accepted"}

    def cancel_reservation(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """CancelReservation."""
        reservation_id = payload["reservationId"]
        for connector in self._connectors[1:]:
            if connector.reservation and connector.reservation.reservation_id == reservation_id:
                self._release(connector)
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    def use(self, connector: Connector, id_tag: str) -> int | None:
        """A transaction starts for ``id_tag``: its reservation on the connector, if any,
        is used up; returns the reservation id for StartTransaction."""
        reservation = connector.reservation
        if reservation is None or reservation.id_tag != id_tag:
            return None
        connector.reservation = None
        self._services.timers.cancel(Timer.RESERVATION_EXPIRY, connector.id)
        return reservation.reservation_id

    def _release(self, connector: Connector) -> None:
        connector.reservation = None
        self._services.timers.cancel(Timer.RESERVATION_EXPIRY, connector.id)
        self._status.refresh_after_reply(connector)

    def _expired(self, connector_id: int, now: float) -> None:
        connector = self._connectors[connector_id]
        connector.reservation = None
        self._status.refresh(connector)
