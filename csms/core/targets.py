"""Outgoing call targets: which URLs csms may call on a partner's say-so (SSRF rules).

A roaming partner hands csms URLs (its versions endpoint, its module endpoints, a command's
`response_url`); a webhook subscriber does the same. Calling whatever comes would let a
partner make csms reach the operator's own network (cloud metadata at 169.254.169.254,
an admin port on loopback). The rules, pure so that OCPI and webhooks can share them:

- the scheme is http or https, there is a host, and no user:password part;
- every address the host resolves to is a public unicast address, unless private targets
  are allowed by configuration (`[ocpi] allow_private_targets`).

Resolving the name is I/O and happens in the adapter; the addresses come in here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

_SCHEMES = ("http", "https")
# Carrier-grade NAT (RFC 6598) is neither private nor global in the ipaddress module.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class Target:
    """A URL taken apart: the host to resolve and the port to connect to."""

    url: str
    scheme: str
    host: str
    port: int


def parse_target(url: str) -> Target | str:
    """The URL's host and port, or why it may not be called."""
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in _SCHEMES:
        return f"scheme {parts.scheme or '(none)'} is not http or https"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed"
    host = parts.hostname
    if not host:
        return "no host in the URL"
    default = 443 if parts.scheme == "https" else 80
    return Target(url=url, scheme=parts.scheme, host=host, port=port or default)


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why csms may not connect to this IP address, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # 240.0.0.0/4 holds the broadcast address (IPv6's reserved ::/8 holds ::1, below).
    reserved_v4 = isinstance(ip, ipaddress.IPv4Address) and ip.is_reserved
    if ip.is_multicast or ip.is_unspecified or reserved_v4:
        return f"{ip} is not a unicast address"
    if ip.is_loopback or ip.is_link_local or ip.is_private or ip in _SHARED:
        return None if allow_private else f"{ip} is a private, loopback or link-local address"
    if ip.is_reserved or not ip.is_global:
        return f"{ip} is not a public unicast address"
    return None


def target_problem(addresses: Sequence[str], *, allow_private: bool) -> str | None:
    """Why the resolved host may not be called: one bad address taints the name."""
    if not addresses:
        return "the host does not resolve"
    for address in addresses:
        problem = address_problem(address, allow_private=allow_private)
        if problem is not None:
            return problem
    return None
