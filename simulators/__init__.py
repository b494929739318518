"""csms-sim: simulated OCPP 1.6J chargers, as a command (``csms-sim run``) and a library.

The simulator imports nothing from ``csms``: it works against any OCPP 1.6J central system.

Library use in tests::

    from simulators import Charger

    async with Charger(url="ws://127.0.0.1:9000/ocpp", identity="CP-1") as cp:
        await cp.boot()
        await cp.status(1, "Available")
"""

from .charger import Charger
from .clock import Clock
from .fleet import Fleet, Progress, ProgressMode, Snapshot
from .ocppj import CallError, CallTimeout, ConnectionLost, ErrorCode
from .power import PowerCurve
from .scenario import Scenario, ScenarioError, plan_charger
from .station import (
    ChargerInfo,
    ConnectorStatus,
    EvSpec,
    IncomingCall,
    Registration,
    SessionRecord,
    Station,
    StopReason,
)
from .stats import Stats

__all__ = [
    "CallError",
    "CallTimeout",
    "Charger",
    "ChargerInfo",
    "Clock",
    "ConnectionLost",
    "ConnectorStatus",
    "ErrorCode",
    "EvSpec",
    "Fleet",
    "IncomingCall",
    "PowerCurve",
    "Progress",
    "ProgressMode",
    "Registration",
    "Scenario",
    "ScenarioError",
    "SessionRecord",
    "Snapshot",
    "Station",
    "Stats",
    "StopReason",
    "plan_charger",
]
