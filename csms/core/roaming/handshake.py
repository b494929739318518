"""The credentials handshake: picking a version and the partner's endpoints.

Spec: ``ocpi/ocpi`` tag ``2.2.1``, version_information_endpoint, credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csms.core.roaming.protocol import VERSION, InterfaceRole, ModuleID


def endpoint_url(
    endpoints: Iterable[Mapping[str, str]], module: ModuleID, role: InterfaceRole
) -> str | None:
    """The URL of a partner's endpoint for a module and interface role, if it has one."""
    for endpoint in endpoints:
        if endpoint.get("identifier") == module.value and endpoint.get("role") == role.value:
            return endpoint.get("url")
    return None


@dataclass(frozen=True)
class PartnerReply:
    """A partner's answer to an OCPI call with its envelope opened (transport_and_format
    §Response format); only answers with a 1xxx status come back as a reply."""

    http_status: int
    status_code: int
    data: Any = None
    status_message: str | None = None
    # The Location header: where a POSTed CDR lives at the eMSP (mod_cdrs §POST Method).
    location: str | None = None


def pick_version(versions: Any) -> str | None:
    """The URL of OCPI 2.2.1 in a partner's version list (version_information_endpoint
    §Version class), or None. Other versions and malformed entries are ignored."""
    if not isinstance(versions, list):
        return None
    for entry in versions:
        if isinstance(entry, dict) and entry.get("version") == VERSION:
            url = entry.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def usable_endpoints(details: Any) -> list[dict[str, str]]:
    """The endpoints of a partner's 2.2.1 version details, as {identifier, role, url}.

    Custom modules (version_information_endpoint §Custom Modules) and malformed entries
    are dropped: csms only calls the modules it knows.
    """
    if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
        return []
    modules = {module.value for module in ModuleID}
    roles = {role.value for role in InterfaceRole}
    found = []
    for endpoint in details["endpoints"]:
        if not isinstance(endpoint, dict):
            continue
        identifier, role, url = (
            endpoint.get("identifier"),
            endpoint.get("role"),
            endpoint.get("url"),
        )
        if identifier in modules and isinstance(url, str) and url:
            # credentials: "the role is not relevant as this module is the same for all roles"
            if role in roles or identifier == ModuleID.CREDENTIALS.value:
                found.append({"identifier": identifier, "role": role or "", "url": url})
    return found


def credentials_url(endpoints: Iterable[Mapping[str, str]]) -> str | None:
    """A partner's credentials endpoint, whatever role it was listed with."""
    for endpoint in endpoints:
        if endpoint.get("identifier") == ModuleID.CREDENTIALS.value:
            return endpoint.get("url")
    return None
