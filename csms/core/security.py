"""Security profiles 1-3 (OCPP 1.6 Security Whitepaper, edition 3): who may connect, and how.

Pure decisions only. The WebSocket adapter extracts what the upgrade request presented
(Basic credentials, the verified client certificate) and verifies passwords; this module
says which profile a connection reached and whether the charger may use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from enum import StrEnum

# SecWP §7.2 / A00.FR.205: the AuthorizationKey is 16 to 20 bytes, written as hex digits.
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 20
# A text password (the form many chargers and CSMSs use in the field) is 16 to 40 characters.
MIN_PASSWORD_CHARS = 16
MAX_PASSWORD_CHARS = 40
_HEX_KEY = re.compile(r"(?:[0-9a-fA-F]{2}){16,20}")


class ClientCnRule(StrEnum):
    """What a profile-3 client certificate's subject CN must equal."""

    IDENTITY = "identity"
    SERIAL = "serial"  # SecWP A00.FR.405: the charge point's serial number
    NONE = "none"


def password_bytes(password: str) -> bytes:
    """The bytes a charger sends as its Basic password for a configured password.

    A 32-40 digit hex string is an AuthorizationKey: OCPP-J §6.2.2 sends the raw key
    bytes, not the hex text. Anything else is a text password (docs/security.md,
    "Passwords (profiles 1 and 2)").
    """
    if _HEX_KEY.fullmatch(password):
        return bytes.fromhex(password)
    return password.encode()


def password_problem(password: str) -> str | None:
    """Why a password cannot be provisioned, or None (SecWP A00.FR.205; docs/security.md)."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        return f"password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in password):
        return "password must not contain spaces or control characters"
    return None


def authorization_key_problem(value: str) -> str | None:
    """Why an AuthorizationKey configuration value is not acceptable, or None."""
    if not _HEX_KEY.fullmatch(value):
        return (
            "AuthorizationKey must be 32 to 40 hex digits "
            f"({MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, SecWP A00.FR.205)"
        )
    return None


def hex_text_key(presented: bytes) -> bytes | None:
    """The key a charger meant when it sent the hex text instead of the raw bytes."""
    try:
        text = presented.decode("ascii")
    except UnicodeDecodeError:
        return None
    return bytes.fromhex(text) if _HEX_KEY.fullmatch(text) else None


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: bytes


class MalformedAuthorization(ValueError):
    """The Authorization header is not a readable Basic credential."""


def parse_basic_authorization(header: str) -> BasicCredentials:
    """Split an ``Authorization: Basic`` header into username and password bytes.

    The password is kept as bytes: a raw AuthorizationKey may hold any byte value, so it
    is never decoded as UTF-8 (OCPP-J §6.2.2; Java-OCA-OCPP#143).

    Raises:
        MalformedAuthorization: not Basic, bad base64, or no ':' separator.
    """
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise MalformedAuthorization("authorization is not http basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedAuthorization("basic credentials are not valid base64") from None
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise MalformedAuthorization("basic credentials have no ':' separator")
    try:
        name = username.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedAuthorization("basic username is not utf-8") from None
    return BasicCredentials(username=name, password=password)


@dataclass(frozen=True)
class ClientCertificate:
    """The subject of a client certificate the TLS layer has already verified."""

    common_name: str | None
    organization: str | None


@dataclass(frozen=True)
class Registration:
    """What csms knows about the charger that asks to connect."""

    security_profile: int
    has_password: bool
    serial_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Presented:
    """What the upgrade request brought, after the password was checked."""

    tls: bool
    certificate: ClientCertificate | None
    basic: BasicCredentials | None
    password_ok: bool


@dataclass(frozen=True)
class Verdict:
    """Admit at `profile`, or refuse with an HTTP status and a reason safe to log."""

    profile: int
    status: int | None = None
    reason: str | None = None

    @property
    def admitted(self) -> bool:
        return self.status is None


def certificate_problem(
    certificate: ClientCertificate,
    *,
    identity: str,
    registration: Registration | None,
    rule: ClientCnRule,
    organization: str,
) -> str | None:
    """Why a verified client certificate does not belong to this charger, or None.

    Binding is what stops a certificate of charger A from opening a session as charger B.
    """
    if organization and certificate.organization != organization:
        # SecWP A00.FR.404: O must be the CPO's name.
        return "client certificate organization does not match"
    if rule is ClientCnRule.IDENTITY and certificate.common_name != identity:
        return "client certificate CN does not match the charge point identity"
    if rule is ClientCnRule.SERIAL:
        serials = registration.serial_numbers if registration else ()
        if certificate.common_name is None or certificate.common_name not in serials:
            return "client certificate CN does not match the charge point serial number"
    return None


def decide(
    *,
    identity: str,
    registration: Registration | None,
    presented: Presented,
    min_profile: int,
    cn_rule: ClientCnRule,
    organization: str,
) -> Verdict:
    """Which profile this connection reached, and whether the charger may use it.

    A charger registered at profile N is refused below N (SecWP A00.FR.002, A05.FR.09).
    Refusals happen before the upgrade, so a live session of the real charger is never
    touched by a failed attempt (docs/security.md, "Who gets in").
    """
    required = max(min_profile, registration.security_profile if registration else 0)
    if presented.certificate is not None:
        problem = certificate_problem(
            presented.certificate,
            identity=identity,
            registration=registration,
            rule=cn_rule,
            organization=organization,
        )
        if problem is not None:
            return Verdict(profile=0, status=401, reason=problem)
        return Verdict(profile=3)
    if presented.basic is not None:
        if presented.basic.username != identity:
            # SecWP A00.FR.204/303: the username is the identity in the URL.
            return Verdict(profile=0, status=401, reason="basic username is not the identity")
        if registration is not None and registration.has_password:
            if not presented.password_ok:
                return Verdict(profile=0, status=401, reason="wrong password")
            reached = 2 if presented.tls else 1
            return _require(reached, required)
    return _require(0, required)


def _require(reached: int, required: int) -> Verdict:
    if reached >= required:
        return Verdict(profile=reached)
    if required == 3:
        return Verdict(profile=reached, status=401, reason="security profile 3 needs a client cert")
    if required == 2 and reached == 1:
        return Verdict(profile=reached, status=403, reason="security profile 2 needs tls")
    return Verdict(
        profile=reached, status=401, reason=f"security profile {required} needs a password"
    )


class FailedAttempts:
    """Failed authentications per key (a charger identity, or a remote address) in a
    sliding window, to answer 429 to the next failure.

    It throttles failures, never logins: a throttled key with correct credentials still
    gets in (docs/security.md, "Failed attempts"). Bounded: the least recently failing
    keys are forgotten first.
    """

    def __init__(self, *, limit: int, window: float = 60.0, max_keys: int = 65536) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, *, now: float) -> float | None:
        """Seconds until `key` is below its limit again, or None when it is not throttled."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window - now

    def record(self, key: str, *, now: float) -> None:
        """One more failure for `key`."""
        failures = self._failures.pop(key, None) or deque()
        failures.append(now)
        while len(failures) > self.limit:
            failures.popleft()
        self._failures[key] = failures
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        """`key` logged in: its earlier failures no longer count."""
        self._failures.pop(key, None)
