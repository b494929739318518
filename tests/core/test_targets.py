"""Outgoing call targets (SSRF rules): scheme, credentials, and the addresses a host resolves to."""

from __future__ import annotations

import pytest

from csms.core.targets import Target, address_problem, parse_target, target_problem


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://ocpi.example.com/versions",
            Target("https://ocpi.example.com/versions", "https", "ocpi.example.com", 443),
        ),
        ("http://10.0.0.1:8080/x", Target("http://10.0.0.1:8080/x", "http", "10.0.0.1", 8080)),
        ("http://[::1]/x", Target("http://[::1]/x", "http", "::1", 80)),
    ],
)
def test_urls_are_taken_apart(url: str, expected: Target) -> None:
    """The host and the port to connect to, default ports per scheme."""
    assert parse_target(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "scheme ftp is not http or https"),
        ("file:///etc/passwd", "scheme file is not http or https"),
        ("https://user:secret@example.com/", "credentials in the URL are not allowed"),
        ("https:///nohost", "no host in the URL"),
        ("https://example.com:99999/", "not a URL: Port out of range 0-65535"),
        ("versions", "scheme (none) is not http or https"),
    ],
)
def test_unusable_urls_say_why(url: str, problem: str) -> None:
    """Other schemes, user:password and missing hosts are refused with a reason."""
    assert parse_target(url) == problem


@pytest.mark.parametrize(
    ("address", "private_ok"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_private_addresses_need_allowing(address: str, private_ok: bool) -> None:
    """Loopback, private, link-local (cloud metadata), CGNAT and their IPv6 and mapped forms
    are refused unless private targets are allowed; public addresses always pass."""
    refused = address_problem(address, allow_private=False)
    assert (refused is None) is private_ok
    assert address_problem(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "not-an-ip"])
def test_never_callable_addresses(address: str) -> None:
    """Unspecified, multicast, broadcast and garbage are refused even when private is allowed."""
    assert address_problem(address, allow_private=True) is not None


def test_one_bad_address_taints_the_name() -> None:
    """A name resolving to a public and a private address is refused; none is refused too."""
    assert target_problem(["8.8.8.8", "10.0.0.1"], allow_private=False) is not None
    assert target_problem(["8.8.8.8", "1.1.1.1"], allow_private=False) is None
    assert target_problem([], allow_private=True) == "the host does not resolve"
