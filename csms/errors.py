"""Our exception tree, one place for every error csms raises on purpose.

CsmsError
├── ConfigError            bad config file, key, type or value
├── StoreError             the database failed; the caller answers InternalError
└── CommandError           a CSMS->charger CALL did not produce a CALLRESULT
    ├── ChargerNotConnected    no live connection for the identity
    ├── CommandTimeout         no answer within ocpp.call_timeout
    └── CommandRejected        the charger answered with a CALLERROR
"""

from __future__ import annotations

from typing import Any


class CsmsError(Exception):
    """Base class of every error csms raises on purpose."""


class ConfigError(CsmsError):
    """The configuration is invalid; the message names the key."""


class StoreError(CsmsError):
    """A database operation failed."""


class CommandError(CsmsError):
    """A CSMS->charger CALL did not produce a CALLRESULT."""


class UnknownChargePoint(CommandError):
    """No charge point is registered under the identity."""


class InvalidCommand(CommandError):
    """The action is unknown or the payload breaks the OCPP 1.6 schema."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class CommandQueueFull(CommandError):
    """Too many commands are already waiting for this charger."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChargerNotConnected(CommandError):
    """The charger has no live connection."""


class CommandTimeout(CommandError):
    """The charger did not answer within the call timeout."""


class CommandRejected(CommandError):
    """The charger answered with a CALLERROR."""

    def __init__(self, *, error_code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"charger answered {error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.details = details
