"""Webhooks, the pure part: which events a subscription gets, how a delivery is signed, when
it is tried again, what an attempt's answer means, and which target addresses are refused.

Signing follows the Standard Webhooks specification (spec/standard-webhooks.md, "Signature
scheme" and "Webhook headers"): the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``,
HMAC-SHA256 with the secret's bytes, sent as ``v1,<base64>``; during a secret rotation one
signature per secret, space-separated. Nothing here does I/O or reads a clock: time and
randomness are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from csms.errors import WebhookTargetRefused

SECRET_PREFIX = "whsec_"
# Standard Webhooks "Signature scheme": a symmetric secret is random, 24 to 512 bytes.
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 512
SIGNATURE_VERSION = "v1"


# -- subscriptions -------------------------------------------------------------------------

_PATTERN = re.compile(r"\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?")


def pattern_problem(pattern: str, known_types: Iterable[str]) -> str | None:
    """Why an event-type pattern is unusable, or None.

    A pattern is ``*`` (every type), an exact type (``session.started``), or a prefix
    ending in ``.*`` (``session.*``) that at least one known type falls under.
    """
    if not _PATTERN.fullmatch(pattern):
        return f"{pattern!r} is not an event type, 'prefix.*' or '*'"
    known = list(known_types)
    if any(matches_type(pattern, event_type) for event_type in known):
        return None
    return f"{pattern!r} matches no event type (known: {', '.join(sorted(known))})"


def matches_type(pattern: str, event_type: str) -> bool:
    """Whether an event type falls under a pattern (``*``, exact, or ``prefix.*``)."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What a subscription gets: event-type patterns, and optionally only some chargers."""

    patterns: tuple[str, ...]
    charge_point_ids: frozenset[str] | None = None

    def accepts(self, *, event_type: str, charge_point_id: str) -> bool:
        if self.charge_point_ids is not None and charge_point_id not in self.charge_point_ids:
            return False
        return any(matches_type(pattern, event_type) for pattern in self.patterns)


class SubscriptionStatus(StrEnum):
    """What GET reports of a subscription (docs/webhooks.md, "Subscriptions")."""

    ACTIVE = "active"
    FAILING = "failing"
    DISABLED = "disabled"


# -- secrets and signatures ----------------------------------------------------------------


def format_secret(raw: bytes) -> str:
    """The secret as it is shown once: ``whsec_`` and its base64 (Standard Webhooks)."""
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def parse_secret(text: str) -> bytes:
    """The secret's bytes.

    Raises:
        ValueError: not ``whsec_`` + base64 of 24 to 512 bytes.
    """
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX}")
    try:
        raw = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a secret is {SECRET_PREFIX} followed by base64") from None
    if not SECRET_MIN_BYTES <= len(raw) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"a secret holds {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes, not {len(raw)}"
        )
    return raw


def signed_content(*, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    """What is signed: ``{webhook-id}.{webhook-timestamp}.{body}`` (Standard Webhooks)."""
    return b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)


def sign(secret: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` signature."""
    content = signed_content(webhook_id=webhook_id, timestamp=timestamp, body=body)
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(
    secrets: Sequence[bytes], *, webhook_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(
        sign(secret, webhook_id=webhook_id, timestamp=timestamp, body=body) for secret in secrets
    )


def signing_secrets(
    *, current: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> tuple[bytes, ...]:
    """The secrets a delivery is signed with now: the current one, and the previous one
    while the rotation's overlap lasts (Standard Webhooks "zero downtime secret rotation").
    """
    keys = [parse_secret(current)]
    if previous is not None and previous_until is not None and now < previous_until:
        keys.append(parse_secret(previous))
    return tuple(keys)


def delivery_headers(
    secrets: Sequence[bytes], *, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (``timestamp``: Unix seconds, now)."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets, webhook_id=webhook_id, timestamp=timestamp, body=body
        ),
    }


# -- attempts and retries ------------------------------------------------------------------


class Outcome(StrEnum):
    """What an attempt's answer means (Standard Webhooks "Delivery success and failure")."""

    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver wants no more; the subscription is disabled
    RETRY = "retry"  # anything else, a timeout, a refused or broken connection


def classify(status_code: int | None) -> Outcome:
    """The outcome of an HTTP status; None is no answer at all (timeout, connection error).

    3xx is a failure: redirects are not followed (Standard Webhooks: update the URL instead).
    """
    if status_code is None:
        return Outcome.RETRY
    if 200 <= status_code <= 299:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.GONE
    return Outcome.RETRY


# Standard Webhooks "Deliverability and reliability": exponential backoff with random jitter,
# so that retries of many deliveries do not arrive together.
JITTER = 0.2


def retry_delay(schedule: Sequence[float], *, failures: int, rand: float) -> float:
    """Seconds to wait after the `failures`-th failed attempt of one delivery (1-based).

    Past the schedule's end the last delay repeats: a failing subscription keeps being
    tried, because an outage delays deliveries and never drops them. `rand` is in [0, 1).
    """
    base = schedule[min(failures, len(schedule)) - 1]
    return base * (1 - JITTER + 2 * JITTER * rand)


def exhausted(schedule: Sequence[float], *, failures: int) -> bool:
    """Whether the schedule's last retry has failed too: the subscription is failing."""
    return failures > len(schedule)


# -- targets (server-side request forgery) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: where to connect, and what to call the host in the request."""

    scheme: str
    host: str  # a name or an IP literal, without brackets
    port: int

    @property
    def is_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_target(url: str) -> Target:
    """Check a webhook URL's form.

    Raises:
        WebhookTargetRefused: not http(s), no host, credentials in it, or a bad port.
    """
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        # It goes into the request line as it is: percent-encode, and use punycode names.
        raise WebhookTargetRefused("the URL has spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetRefused("only http and https URLs can be webhook targets")
    if not parts.hostname:
        raise WebhookTargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        # They would be stored and shown with the URL; the signature authenticates csms.
        raise WebhookTargetRefused("credentials in the URL are not accepted")
    default = 443 if parts.scheme == "https" else 80
    return Target(scheme=parts.scheme, host=parts.hostname, port=port or default)


def address_refusal(address: str) -> str | None:
    """Why csms must not connect to an IP address, or None when it is a public one.

    Loopback, private, link-local (which holds cloud metadata services), unspecified,
    multicast, reserved and shared (carrier-grade NAT) ranges, and IPv6 forms that embed
    such an IPv4 address, are all refused: only globally reachable addresses are called.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return address_refusal(str(embedded))
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


ALLOW_PRIVATE_HINT = "set webhooks.allow_private_targets = true for tests and on-premise use"


def check_addresses(host: str, addresses: Sequence[str], *, allow_private: bool) -> None:
    """Refuse a target when any address its host resolved to is not public.

    Every address is checked, not only the first: a name that resolves to a public and a
    private address could be connected to either.

    Raises:
        WebhookTargetRefused: no address, or one of them is refused; the message says why and
            names the setting that allows it.
    """
    if not addresses:
        raise WebhookTargetRefused(f"{host} does not resolve to any address")
    if allow_private:
        return
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            where = reason if address == host else f"{host} resolves to {address}: {reason}"
            raise WebhookTargetRefused(f"{where}; {ALLOW_PRIVATE_HINT}")
