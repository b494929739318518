"""The OCPI 2.2.1 listener: csms as a CPO to its roaming partners (docs/ocpi.md).

Versions and credentials (both directions of the handshake), Locations, Sessions and CDRs
as Sender, Tokens and Commands as Receiver. Every answer is in the OCPI envelope; the
routes translate HTTP into calls of the roaming flows and back, nothing more.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from csms.core.roaming import (
    OUR_ENDPOINTS,
    VERSION,
    ChargingPreferencesResponse,
    OcpiStatus,
    PartnerState,
    VersionNumber,
    latest_update,
)
from csms.core.session import TokenType
from csms.errors import OcpiRequestError, StoreError
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import (
    ChargingPreferences,
    Credentials,
    Endpoint,
    Version,
    VersionDetails,
)
from csms.flows.partners import Caller, PartnerFlows
from csms.flows.roaming_commands import RoamingCommands
from csms.flows.roaming_locations import PartnerLocations, view_for
from csms.flows.roaming_tokens import TokenFlows, TokenKey, invalid_fields
from csms.ocpi.transport import (
    OcpiMiddleware,
    PageQuery,
    envelope,
    page_query,
    paginated,
)
from csms.store import partners
from csms.store.db import Database

Id36 = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[\x20-\x7e]+$")]


@dataclass
class OcpiServices:
    """What the OCPI routes need from the rest of csms."""

    database: Database
    partners: PartnerFlows
    tokens: TokenFlows
    commands: RoamingCommands
    views: PartnerLocations
    clock: Callable[[], datetime]
    country_code: str
    party_id: str
    base_url: Callable[[], str]
    max_body_bytes: int

    def url(self, path: str) -> str:
        return f"{self.base_url()}/ocpi{path}"


def create_ocpi_app(services: OcpiServices) -> FastAPI:
    """The OCPI listener's ASGI app (served apart from the operator API)."""
    app = FastAPI(title="csms OCPI 2.2.1", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(OcpiMiddleware, max_body_bytes=services.max_body_bytes, clock=services.clock)

    async def ocpi_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OcpiRequestError)
        return envelope(
            exc.data,
            now=services.clock(),
            status=exc.ocpi_status,
            message=str(exc),
            http_status=exc.http_status,
        )

    async def store_error(_request: Request, exc: Exception) -> Response:
        return envelope(
            None,
            now=services.clock(),
            status=OcpiStatus.SERVER_ERROR,
            message=str(exc),
            http_status=503,
        )

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return envelope(
            None,
            now=services.clock(),
            status=OcpiStatus.CLIENT_ERROR,
            message=str(exc.detail),
            http_status=exc.status_code,
        )

    async def parameter_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return envelope(
            None,
            now=services.clock(),
            status=OcpiStatus.INVALID_PARAMETERS,
            message=reasons,
            http_status=400,
        )

    app.add_exception_handler(OcpiRequestError, ocpi_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, parameter_error)
    router = APIRouter(prefix="/ocpi")
    _configuration_routes(router, services)
    _location_routes(router, services)
    _session_and_cdr_routes(router, services)
    _token_routes(router, services)
    _command_routes(router, services)
    app.include_router(router)
    return app


# -- authentication ---------------------------------------------------------------------------


def _authenticated(services: OcpiServices) -> Callable[..., Any]:
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


def _registered(services: OcpiServices) -> Callable[..., Any]:
    authenticated = _authenticated(services)

    async def caller(found: Annotated[Caller, Depends(authenticated)]) -> Caller:
        """Functional modules: "When a server receives a request with a valid
        CREDENTIALS_TOKEN_A, on another module than credentials or versions, the server
        SHALL respond with an HTTP 401"."""
        if found.with_token_a or found.partner.state != PartnerState.REGISTERED.value:
            raise OcpiRequestError(
                "register first: token A is only for versions and credentials",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=401,
            )
        return found

    return caller


def _routing(services: OcpiServices, request: Request, caller: Caller) -> dict[str, str]:
    """transport_and_format §Message Routing Headers of a functional module's response:
    "Direct response: TO Requesting-party, FROM Receiving-party"."""
    to_country = request.headers.get("ocpi-from-country-code") or caller.partner.country_code
    to_party = request.headers.get("ocpi-from-party-id") or caller.partner.party_id
    return {
        "OCPI-to-country-code": to_country[:2],
        "OCPI-to-party-id": to_party[:3],
        "OCPI-from-country-code": services.country_code,
        "OCPI-from-party-id": services.party_id,
    }


async def _body(request: Request) -> bytes:
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


# -- versions and credentials -----------------------------------------------------------------


def _configuration_routes(router: APIRouter, services: OcpiServices) -> None:
    caller_of = _authenticated(services)
    Authenticated = Annotated[Caller, Depends(caller_of)]

    @router.get("/versions")
    async def versions(_caller: Authenticated) -> Response:
        """version_information_endpoint §Version information endpoint."""
        version = Version(version=VersionNumber(VERSION), url=services.url(f"/{VERSION}"))
        return envelope([to_json_dict(version)], now=services.clock())

    @router.get(f"/{VERSION}")
    async def version_details(_caller: Authenticated) -> Response:
        """version_information_endpoint §Version details endpoint: our modules and roles.

        Tariffs are left out until csms keeps tariffs (docs/ocpi.md, "Not implemented").
        """
        endpoints = [
            Endpoint(identifier=module, role=role, url=services.url(f"/{VERSION}/{module.value}"))
            for module, role in OUR_ENDPOINTS
        ]
        details = VersionDetails(version=VersionNumber(VERSION), endpoints=endpoints)
        return envelope(to_json_dict(details), now=services.clock())

    @router.get(f"/{VERSION}/credentials")
    async def get_credentials(caller: Authenticated) -> Response:
        return envelope(services.partners.credentials_for(caller), now=services.clock())

    @router.post(f"/{VERSION}/credentials")
    async def post_credentials(caller: Authenticated, request: Request) -> Response:
        body = _credentials(await _body(request))
        data = await services.partners.register(caller, body)
        return envelope(data, now=services.clock())

    @router.put(f"/{VERSION}/credentials")
    async def put_credentials(caller: Authenticated, request: Request) -> Response:
        body = _credentials(await _body(request))
        data = await services.partners.update(caller, body)
        return envelope(data, now=services.clock())

    @router.delete(f"/{VERSION}/credentials")
    async def delete_credentials(caller: Authenticated) -> Response:
        await services.partners.unregister(caller)
        return envelope(None, now=services.clock())


def _credentials(raw: bytes) -> Credentials:
    try:
        return Credentials.model_validate_json(raw)
    except ValidationError as exc:
        raise OcpiRequestError(
            invalid_fields(exc), ocpi_status=OcpiStatus.INVALID_PARAMETERS
        ) from exc


# -- Locations, Sender interface (mod_locations §Sender Interface) ----------------------------


def _location_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(_registered(services))]

    async def views(caller: Caller) -> list[dict[str, Any]]:
        now = services.clock()

        async def query(session: AsyncSession) -> list[dict[str, Any]]:
            states = await services.views.all(session)
            kept = await partners.partner_locations(session, caller.partner.id)
            selection = partners.selection_of(caller.partner, kept)
            found = [view_for(state, selection=selection, sent=None, now=now) for state in states]
            return [view for view in found if view is not None]

        return await services.database.read(query)

    async def one(caller: Caller, location_id: str) -> dict[str, Any]:
        now = services.clock()

        async def query(session: AsyncSession) -> dict[str, Any] | None:
            state = await services.views.load(session, location_id)
            if state is None:
                return None
            kept = await partners.partner_locations(session, caller.partner.id)
            selection = partners.selection_of(caller.partner, kept)
            return view_for(state, selection=selection, sent=None, now=now)

        found = await services.database.read(query)
        if found is None:
            raise _not_found(f"unknown location {location_id}", OcpiStatus.UNKNOWN_LOCATION)
        return found

    @router.get(f"/{VERSION}/locations")
    async def list_locations(caller: Registered, request: Request) -> Response:
        """GET List, paginated, filtered on last_updated (mod_locations §GET List)."""
        query = page_query(request)
        found = [view for view in await views(caller) if _within(view, query)]
        return paginated(
            found[query.offset : query.offset + query.limit],
            total=len(found),
            query=query,
            request=request,
            base_url=services.base_url(),
            now=services.clock(),
            headers=_routing(services, request, caller),
        )

    @router.get(f"/{VERSION}/locations/{{location_id}}")
    async def get_location(caller: Registered, request: Request, location_id: Id36) -> Response:
        found = await one(caller, location_id)
        return envelope(found, now=services.clock(), headers=_routing(services, request, caller))

    @router.get(f"/{VERSION}/locations/{{location_id}}/{{evse_uid}}")
    async def get_evse(
        caller: Registered, request: Request, location_id: Id36, evse_uid: Id36
    ) -> Response:
        evse = _evse(await one(caller, location_id), evse_uid)
        return envelope(evse, now=services.clock(), headers=_routing(services, request, caller))

    @router.get(f"/{VERSION}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}")
    async def get_connector(
        caller: Registered,
        request: Request,
        location_id: Id36,
        evse_uid: Id36,
        connector_id: Id36,
    ) -> Response:
        evse = _evse(await one(caller, location_id), evse_uid)
        for connector in evse["connectors"]:
            if connector["id"] == connector_id:
                return envelope(
                    connector, now=services.clock(), headers=_routing(services, request, caller)
                )
        raise _not_found(f"unknown connector {connector_id}", OcpiStatus.UNKNOWN_LOCATION)


def _evse(location: dict[str, Any], evse_uid: str) -> dict[str, Any]:
    for evse in location.get("evses", ()):
        if evse["uid"] == evse_uid:
            return dict(evse)
    raise _not_found(f"unknown EVSE {evse_uid}", OcpiStatus.UNKNOWN_LOCATION)


def _within(location: dict[str, Any], query: PageQuery) -> bool:
    updated = latest_update(location)
    if query.date_from is not None and updated < query.date_from:
        return False
    return query.date_to is None or updated < query.date_to


def _not_found(message: str, status: OcpiStatus) -> OcpiRequestError:
    # status_codes: "In case of a GET request, when the resource does NOT exist, the server
    # SHOULD return a HTTP 404 - Not Found."
    return OcpiRequestError(message, ocpi_status=status, http_status=404)


# -- Sessions and CDRs, Sender interface ------------------------------------------------------


def _session_and_cdr_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(_registered(services))]

    async def page_of(
        pages: Any, caller: Caller, query: PageQuery
    ) -> tuple[list[dict[str, Any]], int]:
        found: tuple[list[dict[str, Any]], int] = await services.database.read(
            lambda s: pages(
                s,
                partner_id=caller.partner.id,
                date_from=query.date_from,
                date_to=query.date_to,
                offset=query.offset,
                limit=query.limit,
            )
        )
        return found

    @router.get(f"/{VERSION}/sessions")
    async def list_sessions(caller: Registered, request: Request) -> Response:
        """mod_sessions §GET Method: the caller's own Sessions only; date_from is required."""
        query = page_query(request, date_from_required=True)
        items, total = await page_of(partners.sessions_page, caller, query)
        return paginated(
            items,
            total=total,
            query=query,
            request=request,
            base_url=services.base_url(),
            now=services.clock(),
            headers=_routing(services, request, caller),
        )

    @router.put(f"/{VERSION}/sessions/{{session_id}}/charging_preferences")
    async def charging_preferences(
        caller: Registered, request: Request, session_id: Id36
    ) -> Response:
        """mod_sessions §PUT Method: csms does no preference-based smart charging."""
        raw = await _body(request)
        try:
            ChargingPreferences.model_validate_json(raw)
        except ValidationError as exc:
            raise OcpiRequestError(
                invalid_fields(exc), ocpi_status=OcpiStatus.INVALID_PARAMETERS
            ) from exc
        kept = await services.database.read(
            lambda s: partners.get_session(s, partner_id=caller.partner.id, session_id=session_id)
        )
        if kept is None:
            raise _not_found(f"unknown session {session_id}", OcpiStatus.CLIENT_ERROR)
        return envelope(
            ChargingPreferencesResponse.NOT_POSSIBLE.value,
            now=services.clock(),
            headers=_routing(services, request, caller),
        )

    @router.get(f"/{VERSION}/cdrs")
    async def list_cdrs(caller: Registered, request: Request) -> Response:
        """mod_cdrs §GET Method: the caller's own CDRs, oldest first."""
        query = page_query(request)
        items, total = await page_of(partners.cdrs_page, caller, query)
        return paginated(
            items,
            total=total,
            query=query,
            request=request,
            base_url=services.base_url(),
            now=services.clock(),
            headers=_routing(services, request, caller),
        )


# -- Tokens, Receiver interface (mod_tokens §Receiver Interface) ------------------------------


def _token_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(_registered(services))]
    path = f"/{VERSION}/tokens/{{country_code}}/{{party_id}}/{{token_uid}}"
    CountryCode = Annotated[str, Path(pattern=r"^[A-Za-z]{2}$")]
    PartyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{3}$")]
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
        return envelope(data, now=services.clock(), headers=_routing(services, request, caller))

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
            caller, key(country_code, party_id, token_uid, token_type), await _body(request)
        )
        return envelope(
            None,
            now=services.clock(),
            http_status=201 if created else 200,
            headers=_routing(services, request, caller),
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
            caller, key(country_code, party_id, token_uid, token_type), await _body(request)
        )
        return envelope(None, now=services.clock(), headers=_routing(services, request, caller))


# -- Commands, Receiver interface (mod_commands §Receiver Interface) --------------------------


def _command_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(_registered(services))]

    @router.post(f"/{VERSION}/commands/{{command}}")
    async def post_command(
        caller: Registered,
        request: Request,
        command: Annotated[str, Path(max_length=32)],
    ) -> Response:
        data = await services.commands.receive(caller, command, await _body(request))
        return envelope(data, now=services.clock(), headers=_routing(services, request, caller))
