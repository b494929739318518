"""What every route of the OCPI listener shares: the services it calls, who is calling,
the routing headers of an answer, and reading a body (docs/ocpi.md, "Transport")."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Path, Request

from csms.core.roaming import OcpiStatus, PartnerState
from csms.core.roaming_hub import PartyRef, response_routing
from csms.errors import OcpiRequestError
from csms.flows.partners import Caller, PartnerFlows
from csms.flows.roaming_commands import RoamingCommands
from csms.flows.roaming_hub import HubFlows, from_party
from csms.flows.roaming_locations import PartnerLocations
from csms.flows.roaming_tokens import TokenFlows
from csms.store.db import Database

Id36 = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[\x20-\x7e]+$")]
CountryCode = Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")]
PartyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{3}$")]


@dataclass
class OcpiServices:
    """What the OCPI routes need from the rest of csms."""

    database: Database
    partners: PartnerFlows
    tokens: TokenFlows
    commands: RoamingCommands
    views: PartnerLocations
    hubs: HubFlows
    clock: Callable[[], datetime]
    country_code: str
    party_id: str
    base_url: Callable[[], str]
    max_body_bytes: int

    def url(self, path: str) -> str:
        return f"{self.base_url()}/ocpi{path}"


def authenticated(services: OcpiServices) -> Callable[..., Any]:
    async def caller(request: Request) -> Caller:
        """transport_and_format §Authorization header: unknown or missing token -> 401."""
        found = await services.partners.authenticate(request.headers.get("authorization"))
        if found is None:
            raise OcpiRequestError(
                "missing or unknown credentials token",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=401,
            )
        request.state.partner_id = found.partner.id
        return found

    return caller


def registered(services: OcpiServices) -> Callable[..., Any]:
    """A registered partner on a functional module, with the party it speaks for."""
    authenticated_ = authenticated(services)

    async def caller(found: Annotated[Caller, Depends(authenticated_)], request: Request) -> Caller:
        """Functional modules: "When a server receives a request with a valid
        CREDENTIALS_TOKEN_A, on another module than credentials or versions, the server
        SHALL respond with an HTTP 401"."""
        if found.with_token_a or found.partner.state != PartnerState.REGISTERED.value:
            raise OcpiRequestError(
                "register first: token A is only for versions and credentials",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=401,
            )
        # transport_and_format §Message Routing Headers: a hub names the party it relays.
        party = from_party(
            request.headers.get("ocpi-from-country-code"),
            request.headers.get("ocpi-from-party-id"),
        )
        return await services.hubs.routed(found, party)

    return caller


def routing(services: OcpiServices, request: Request, caller: Caller) -> dict[str, str]:
    """transport_and_format §Message Routing Headers of a functional module's response:
    "Direct response: TO Requesting-party, FROM Receiving-party"."""
    return response_routing(
        us=PartyRef.of(services.country_code, services.party_id),
        caller=PartyRef.of(caller.partner.country_code, caller.partner.party_id),
        from_party=from_party(
            request.headers.get("ocpi-from-country-code"),
            request.headers.get("ocpi-from-party-id"),
        ),
    )


async def json_body(request: Request) -> bytes:
    """The request body, once it is JSON (status_codes: "When a message does not contain a
    valid JSON string, the HTTP error 400 - Bad request MUST be returned")."""
    raw = await request.body()
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OcpiRequestError(
            "the body is not JSON", ocpi_status=OcpiStatus.INVALID_PARAMETERS, http_status=400
        ) from None
    return raw


def not_found(message: str, status: OcpiStatus) -> OcpiRequestError:
    # status_codes: "In case of a GET request, when the resource does NOT exist, the server
    # SHOULD return a HTTP 404 - Not Found."
    return OcpiRequestError(message, ocpi_status=status, http_status=404)
