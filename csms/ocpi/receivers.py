"""The OCPI listener's Receiver interfaces: Tokens and Commands from partners, and
HubClientInfo from hubs (OCPI 2.2.1 mod_tokens, mod_commands, mod_hub_client_info)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from csms.core.roaming import VERSION, ModuleID, OcpiStatus, PartnerState
from csms.core.roaming_hub import PartyRef
from csms.core.session import TokenType
from csms.errors import OcpiRequestError
from csms.flows.partners import Caller
from csms.flows.roaming_tokens import TokenKey
from csms.ocpi.services import (
    CountryCode,
    Id36,
    OcpiServices,
    PartyId,
    authenticated,
    json_body,
    registered,
    routing,
)
from csms.ocpi.transport import envelope

# -- Tokens, Receiver interface (mod_tokens §Receiver Interface) ------------------------------


def token_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(registered(services))]
    path = f"/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{token_uid}}"
    TypeParam = Annotated[TokenType, Query(alias="type")]

    def key(country_code: str, party_id: str, uid: str, token_type: TokenType) -> TokenKey:
        return TokenKey(
            country_code=country_code, party_id=party_id, uid=uid, type=token_type.value
        )

    @router.get(path)
    async def get_token(
        caller: Registered,
        request: Request,
        country_code: CountryCode,
        party_id: PartyId,
        token_uid: Id36,
        token_type: TypeParam = TokenType.RFID,
    ) -> Response:
        data = await services.tokens.get(caller, key(country_code, party_id, token_uid, token_type))
        return envelope(data, now=services.clock(), headers=routing(services, request, caller))

    @router.put(path)
    async def put_token(
        caller: Registered,
        request: Request,
        country_code: CountryCode,
        party_id: PartyId,
        token_uid: Id36,
        token_type: TypeParam = TokenType.RFID,
    ) -> Response:
        """A new or replaced Token: HTTP 201 when it is new, 200 when replaced."""
        created = await services.tokens.put(
            caller, key(country_code, party_id, token_uid, token_type), await json_body(request)
        )
        return envelope(
            None,
            now=services.clock(),
            http_status=201 if created else 200,
            headers=routing(services, request, caller),
        )

    @router.patch(path)
    async def patch_token(
        caller: Registered,
        request: Request,
        country_code: CountryCode,
        party_id: PartyId,
        token_uid: Id36,
        token_type: TypeParam = TokenType.RFID,
    ) -> Response:
        await services.tokens.patch(
            caller, key(country_code, party_id, token_uid, token_type), await json_body(request)
        )
        return envelope(None, now=services.clock(), headers=routing(services, request, caller))


# -- Commands, Receiver interface (mod_commands §Receiver Interface) --------------------------


def command_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(registered(services))]

    @router.post(f"/{VERSION}/commands/{{command}}")
    async def post_command(
        caller: Registered,
        request: Request,
        command: Annotated[str, Path(max_length=32)],
    ) -> Response:
        data = await services.commands.receive(caller, command, await json_body(request))
        return envelope(data, now=services.clock(), headers=routing(services, request, caller))


# -- HubClientInfo, Receiver interface (mod_hub_client_info §Receiver Interface) -------------


def hub_client_routes(router: APIRouter, services: OcpiServices) -> None:
    # mod_hub_client_info is a Configuration Module: "routing headers SHALL NOT be used"
    # (transport_and_format §Message Routing Headers), so the answers carry none.
    Authenticated = Annotated[Caller, Depends(authenticated(services))]
    path = f"/{VERSION}/{ModuleID.HUB_CLIENT_INFO.value}/{{country_code}}/{{party_id}}"

    @router.get(path)
    async def get_client(
        caller: Authenticated, country_code: CountryCode, party_id: PartyId
    ) -> Response:
        data = await services.hubs.get_client(
            _registered_only(caller), PartyRef.of(country_code, party_id)
        )
        return envelope(data, now=services.clock())

    @router.put(path)
    async def put_client(
        caller: Authenticated, request: Request, country_code: CountryCode, party_id: PartyId
    ) -> Response:
        await services.hubs.put_client(
            _registered_only(caller), PartyRef.of(country_code, party_id), await json_body(request)
        )
        return envelope(None, now=services.clock())


def _registered_only(caller: Caller) -> Caller:
    if caller.with_token_a or caller.partner.state != PartnerState.REGISTERED.value:
        raise OcpiRequestError(
            "register first: token A is only for versions and credentials",
            ocpi_status=OcpiStatus.CLIENT_ERROR,
            http_status=401,
        )
    return caller
