"""Our exception tree, one place for every error csms raises on purpose.

Each adapter converts the errors of the libraries it wraps into these at its own edge
(SQLAlchemy and OS errors in `csms/store/`, aiomqtt/amqtt errors in `csms/events/mqtt.py`),
so callers catch one type per failure, never a library's.

    CsmsError
    ├── ConfigError                bad config file, key, type or value
    ├── StoreError                 the database failed; 503 / InternalError, retry later
    ├── EventPublishError          the broker did not acknowledge a publish (no PUBACK)
    │   └── BrokerUnavailable          no connection to the broker could be made
    ├── EmbeddedBrokerError        the embedded broker could not start
    ├── WalletError                a posting, voucher or subscription refused (its `status`:
    │                              404 unknown user, 409 voucher used, 422 bad request)
    ├── WebhookTargetRefused  422  a webhook URL csms will not call (scheme, SSRF rules)
    ├── CircuitError               a circuit edit refused (its `status`: 404 unknown circuit,
    │                              409 still a parent / connector elsewhere, 422 bad tree)
    ├── CommandError               a CSMS->charger command did not produce a usable answer
    │   ├── UnknownChargePoint         404  no charge point is registered under the identity
    │   ├── InvalidCommand             422  unknown action, off-schema or forbidden payload
    │   ├── ChargerNotConnected        409  no live connection for the identity
    │   ├── ChargerNotAccepted         409  pending or rejected: OCPP 1.6 §4.2 forbids it
    │   ├── CommandQueueFull           429  too many commands waiting for this charger
    │   ├── CommandRejected            502  the charger answered with a CALLERROR
    │   ├── InvalidAnswer              502  the charger's CALLRESULT breaks the 1.6 schema
    │   └── CommandTimeout             504  no answer within ocpp.call_timeout
    ├── PartnerError               an OCPI call to a roaming partner did not succeed
    │   ├── UnsafeTarget               the URL is not one csms may call (SSRF rules)
    │   ├── PartnerUnreachable         no usable answer: network, timeout, 5xx, not OCPI
    │   ├── PartnerRefused             the partner answered 4xx or an OCPI error status
    │   └── NoCommonVersion            the partner offers no OCPI 2.2.1
    └── OcpiRequestError           an OCPI request to csms cannot be served as asked

The number beside each command error is its `status`: the HTTP status of the command API
and the `status` field of an MQTT command reply (docs/api.md, "Commands").
"""

from __future__ import annotations

from typing import Any, ClassVar


class CsmsError(Exception):
    """Base class of every error csms raises on purpose."""


class ConfigError(CsmsError):
    """The configuration is invalid; the message names the key."""


class StoreError(CsmsError):
    """A database operation failed (the database is unreachable, or a write was refused)."""

    status: ClassVar[int] = 503


class EventPublishError(CsmsError):
    """The broker did not acknowledge a publish; the event was not delivered."""


class BrokerUnavailable(EventPublishError):
    """No connection to the broker could be made."""


class EmbeddedBrokerError(CsmsError):
    """The embedded broker could not start (for example, the port is taken)."""


class WalletError(CsmsError):
    """A wallet operation was refused; `status` is the HTTP status of the wallet API."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class WebhookTargetRefused(CsmsError):
    """A webhook URL is not http(s), or its host is (or resolves to) a refused address."""

    status: ClassVar[int] = 422


class CircuitError(CsmsError):
    """A circuit edit was refused; `status` is the HTTP status of the circuits API."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class CommandError(CsmsError):
    """A CSMS->charger CALL did not produce a usable CALLRESULT."""

    status: ClassVar[int] = 500

    @property
    def fields(self) -> dict[str, Any]:
        """What the answer to the requester carries besides `detail` (API body, MQTT reply)."""
        return {}


class UnknownChargePoint(CommandError):
    """No charge point is registered under the identity."""

    status: ClassVar[int] = 404


class InvalidCommand(CommandError):
    """The action is unknown or the payload breaks the OCPP 1.6 schema."""

    status: ClassVar[int] = 422

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ChargerNotConnected(CommandError):
    """The charger has no live connection."""

    status: ClassVar[int] = 409


class ChargerNotAccepted(CommandError):
    """The charger is pending or rejected, and the action may not be sent to it yet."""

    status: ClassVar[int] = 409


class CommandQueueFull(CommandError):
    """Too many commands are already waiting for this charger."""

    status: ClassVar[int] = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CommandRejected(CommandError):
    """The charger answered with a CALLERROR."""

    status: ClassVar[int] = 502

    def __init__(self, *, error_code: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(f"charger answered {error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.details = details

    @property
    def fields(self) -> dict[str, Any]:
        return {
            "errorCode": self.error_code,
            "errorDescription": self.description,
            "errorDetails": self.details,
        }


class InvalidAnswer(CommandError):
    """The charger answered with a CALLRESULT that breaks the OCPP 1.6 schema."""

    status: ClassVar[int] = 502

    def __init__(self, *, error_code: str, description: str, response: Any) -> None:
        super().__init__(f"charger's answer is invalid ({error_code}): {description}")
        self.error_code = error_code
        self.description = description
        self.response = response

    @property
    def fields(self) -> dict[str, Any]:
        return {"errorCode": self.error_code, "errorDescription": self.description}


class CommandTimeout(CommandError):
    """The charger did not answer within the call timeout."""

    status: ClassVar[int] = 504


class PartnerError(CsmsError):
    """An OCPI call to a roaming partner did not succeed (docs/ocpi.md)."""


class UnsafeTarget(PartnerError):
    """The URL breaks the outgoing-call rules: scheme, credentials, or a private address."""


class PartnerUnreachable(PartnerError):
    """No usable answer: connection failed, timed out, HTTP 5xx, or not an OCPI response.

    Worth retrying later: the partner may be down.
    """


class PartnerRefused(PartnerError):
    """The partner answered, and said no: HTTP 4xx or an OCPI status outside 1xxx."""

    def __init__(self, message: str, *, http_status: int, ocpi_status: int | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.ocpi_status = ocpi_status


class NoCommonVersion(PartnerError):
    """The partner's versions endpoint lists no OCPI 2.2.1 (status_codes §3002)."""


class OcpiRequestError(CsmsError):
    """An OCPI request to csms that cannot be served: the answer's HTTP and OCPI status.

    status_codes: a request that reached the OCPI layer gets HTTP 200 with an OCPI error
    status (2xxx the caller's fault, 3xxx ours); a few cases have their own HTTP status
    (401 unknown token, 404 unknown object, 405 credentials out of turn).
    """

    def __init__(
        self, message: str, *, ocpi_status: int, http_status: int = 200, data: Any = None
    ) -> None:
        super().__init__(message)
        self.ocpi_status = ocpi_status
        self.http_status = http_status
        # Some errors still carry data, e.g. a CommandResponse REJECTED with status 2003.
        self.data = data
