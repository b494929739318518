"""The pure webhook decisions: filters, Standard Webhooks signatures, retries, SSRF rules."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from csms.config import parse_durations
from csms.core.webhooks import (
    EventFilter,
    Outcome,
    address_refusal,
    check_addresses,
    classify,
    delivery_headers,
    exhausted,
    format_secret,
    matches_type,
    parse_secret,
    parse_target,
    pattern_problem,
    retry_delay,
    sign,
    signature_header,
    signing_secrets,
)
from csms.errors import WebhookTargetRefused

KNOWN = ("session.started", "session.stopped", "evse.status", "authorization")

# The sign test vector of the Standard Webhooks reference libraries
# (standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py
# `test_sign_function`; the JavaScript, Go and Rust libraries test the same one).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("pattern", "event_type", "matches"),
    [
        ("*", "session.started", True),
        ("session.*", "session.started", True),
        ("session.*", "session.stopped", True),
        ("session.*", "sessions.started", False),
        ("session.*", "evse.status", False),
        ("evse.status", "evse.status", True),
        ("evse.status", "evse.status.extra", False),
        ("authorization", "authorization", True),
    ],
)
def test_patterns_match_exact_types_prefixes_and_everything(
    pattern: str, event_type: str, matches: bool
) -> None:
    """`*` matches every type, `prefix.*` the types under the prefix, a name itself only."""
    assert matches_type(pattern, event_type) is matches


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("*", None),
        ("session.*", None),
        ("evse.status", None),
        ("sessions.*", "matches no event type"),
        ("tariff.updated", "matches no event type"),
        ("session*", "is not an event type"),
        ("*.started", "is not an event type"),
        ("Session.Started", "is not an event type"),
        ("", "is not an event type"),
    ],
)
def test_patterns_that_match_nothing_are_refused(pattern: str, problem: str | None) -> None:
    """A pattern must be well formed and match at least one known event type."""
    found = pattern_problem(pattern, KNOWN)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_a_filter_takes_types_and_optionally_chargers() -> None:
    """A charge point list narrows the types; without one every charger's events pass."""
    everyone = EventFilter(patterns=("session.*",))
    some = EventFilter(patterns=("session.*", "evse.status"), charge_point_ids=frozenset({"A"}))
    assert everyone.accepts(event_type="session.started", charge_point_id="B")
    assert not everyone.accepts(event_type="evse.status", charge_point_id="B")
    assert some.accepts(event_type="evse.status", charge_point_id="A")
    assert not some.accepts(event_type="evse.status", charge_point_id="B")


def test_signing_matches_the_standard_webhooks_test_vector() -> None:
    """The published vector: whsec_MfKQ..., msg_p5jX..., 1614265330 -> v1,g0hM9SsE...1OE=."""
    secret = parse_secret(VECTOR_SECRET)
    got = sign(secret, webhook_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY)
    assert got == VECTOR_SIGNATURE


def test_the_reference_library_verifies_our_headers() -> None:
    """Headers we build pass the reference library's `Webhook.verify`, body unchanged."""
    secret = format_secret(bytes(range(32)))
    body = b'{"id":"e1","data":{"kwh":1.5}}'
    now = int(datetime.now(UTC).timestamp())
    headers = delivery_headers([parse_secret(secret)], webhook_id="e1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers) == {"id": "e1", "data": {"kwh": 1.5}}
    assert headers["webhook-id"] == "e1"
    assert headers["webhook-timestamp"] == str(now)


def test_during_a_rotation_each_secret_signs_and_either_verifies() -> None:
    """Two secrets give two space-separated signatures; the receiver may hold either."""
    old, new = format_secret(b"o" * 24), format_secret(b"n" * 32)
    body = b"{}"
    now = int(datetime.now(UTC).timestamp())
    keys = [parse_secret(new), parse_secret(old)]
    value = signature_header(keys, webhook_id="e2", timestamp=now, body=body)
    assert len(value.split(" ")) == 2
    headers = {"webhook-id": "e2", "webhook-timestamp": str(now), "webhook-signature": value}
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_the_previous_secret_signs_only_while_the_overlap_lasts() -> None:
    """Before `previous_until` both secrets sign; from it on only the current one."""
    current, previous = format_secret(b"c" * 24), format_secret(b"p" * 24)
    until = datetime(2026, 1, 1, 12, tzinfo=UTC)
    during = signing_secrets(
        current=current, previous=previous, previous_until=until, now=until - timedelta(seconds=1)
    )
    after = signing_secrets(current=current, previous=previous, previous_until=until, now=until)
    assert during == (b"c" * 24, b"p" * 24)
    assert after == (b"c" * 24,)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 512 bytes"),
    ],
)
def test_a_bad_secret_is_refused_with_the_reason(text: str, problem: str) -> None:
    """Secrets are whsec_ + base64 of 24 to 512 bytes (Standard Webhooks)."""
    with pytest.raises(ValueError, match=problem):
        parse_secret(text)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (301, Outcome.RETRY),
        (307, Outcome.RETRY),
        (400, Outcome.RETRY),
        (410, Outcome.GONE),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)
def test_only_2xx_delivers_and_410_means_gone(status: int | None, outcome: Outcome) -> None:
    """2xx is success, 410 disables, anything else (redirects, no answer) is retried."""
    assert classify(status) is outcome


def test_retries_follow_the_schedule_with_jitter_and_repeat_its_end() -> None:
    """Delay n is the schedule's n-th +-20%; past the end the last delay repeats."""
    schedule = parse_durations("5s, 30s, 2m, 10m, 1h, 6h, 12h")
    assert schedule == (5, 30, 120, 600, 3600, 21600, 43200)
    assert retry_delay(schedule, failures=1, rand=0.0) == pytest.approx(4.0)
    assert retry_delay(schedule, failures=1, rand=0.5) == pytest.approx(5.0)
    assert retry_delay(schedule, failures=2, rand=0.999999) == pytest.approx(36.0, rel=1e-5)
    assert retry_delay(schedule, failures=9, rand=0.5) == pytest.approx(43200)
    assert not exhausted(schedule, failures=7)
    assert exhausted(schedule, failures=8)


@pytest.mark.parametrize("text", ["", "5s,,1m", "-1s", "0", "5 minutes", "1w"])
def test_a_bad_schedule_is_refused(text: str) -> None:
    """Every item of a schedule is a positive duration (ms, s, m, h, d)."""
    with pytest.raises(ValueError, match="positive duration"):
        parse_durations(text)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("example.com/hook", "only http and https"),
        ("http:///path", "no host"),
        ("https://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com/a b", "spaces, control or non-ASCII"),
        ("http://example.com/a\r\nx-injected: 1", "spaces, control or non-ASCII"),
        ("http://bücher.example/", "spaces, control or non-ASCII"),
    ],
)
def test_only_plain_http_and_https_urls_are_targets(url: str, problem: str) -> None:
    """Other schemes, no host, credentials in the URL or a bad port are refused."""
    with pytest.raises(WebhookTargetRefused, match=problem):
        parse_target(url)


def test_a_target_knows_its_port_and_whether_it_is_an_address() -> None:
    """Default ports per scheme; IPv6 literals lose their brackets."""
    assert parse_target("https://hooks.example.com/a").port == 443
    assert parse_target("http://hooks.example.com/a").port == 80
    literal = parse_target("http://[2001:db8::1]:8080/a")
    assert (literal.host, literal.port, literal.is_literal) == ("2001:db8::1", 8080, True)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not a public address"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("2002:a00:1::", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_may_be_called(address: str, reason: str | None) -> None:
    """Loopback, private, link-local (metadata services) and other non-public ranges are
    refused, also inside IPv4-mapped and 6to4 IPv6 addresses."""
    found = address_refusal(address)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


def test_every_resolved_address_must_be_public_unless_private_targets_are_allowed() -> None:
    """One private address among public ones refuses the name; the setting allows it."""
    with pytest.raises(WebhookTargetRefused, match=r"resolves to 10\.0\.0\.7.*allow_private"):
        check_addresses("hooks.example", ["93.184.215.14", "10.0.0.7"], allow_private=False)
    with pytest.raises(WebhookTargetRefused, match="does not resolve"):
        check_addresses("hooks.example", [], allow_private=True)
    check_addresses("hooks.example", ["10.0.0.7"], allow_private=True)
    check_addresses("hooks.example", ["93.184.215.14"], allow_private=False)
