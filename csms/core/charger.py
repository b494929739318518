"""What a charger reports about itself, as typed messages: boot details and connector status.

`csms/ocpp16/convert.py` makes these from OCPP payloads; the application layer, the store
and the event builders take them and never read an OCPP key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from csms.core.security_events import SecurityEventSource


@dataclass(frozen=True)
class BootInfo:
    """A BootNotification's description of the charger (OCPP 1.6 §6.2)."""

    vendor: str
    model: str
    serial_number: str | None = None
    charge_box_serial_number: str | None = None
    firmware_version: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None

    @property
    def serial_numbers(self) -> tuple[str, ...]:
        """The serial numbers it gave, for the certificate CN rule (SecWP A00.FR.405)."""
        return tuple(s for s in (self.charge_box_serial_number, self.serial_number) if s)


@dataclass(frozen=True)
class ConnectorStatusReport:
    """A StatusNotification (OCPP 1.6 §6.47); connector 0 is the charge point itself."""

    connector_id: int
    status: str
    error_code: str
    timestamp: datetime
    info: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None

    @property
    def is_evse(self) -> bool:
        """Connector 0 is the charge point, not an EVSE (OCPP 1.6 §4.9)."""
        return self.connector_id >= 1


@dataclass(frozen=True)
class SecurityEventFacts:
    """A security event, from a charger (SecWP A04) or from csms itself (a refused login)."""

    charge_point_id: str
    kind: str
    timestamp: datetime
    source: SecurityEventSource
    tech_info: str | None = None
    remote_address: str | None = None
