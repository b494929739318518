"""The OCPI 2.2.1 listener: csms as a CPO to its roaming partners (docs/ocpi.md).

Versions and credentials (both directions of the handshake), Locations, Sessions, CDRs
and Tariffs as Sender here; Tokens, Commands and HubClientInfo as Receiver in
csms.ocpi.receivers. Every answer is in the OCPI envelope; the routes translate HTTP into
calls of the roaming flows and back, nothing more.
"""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
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
    VersionNumber,
    latest_update,
)
from csms.errors import OcpiRequestError, StoreError
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import (
    ChargingPreferences,
    Credentials,
    Endpoint,
    Version,
    VersionDetails,
)
from csms.flows.partners import Caller
from csms.flows.roaming_locations import view_for
from csms.flows.roaming_tariffs import validated_tariff
from csms.flows.roaming_tokens import invalid_fields
from csms.ocpi.receivers import command_routes, hub_client_routes, token_routes
from csms.ocpi.services import (
    Id36,
    OcpiServices,
    authenticated,
    json_body,
    not_found,
    registered,
    routing,
)
from csms.ocpi.transport import (
    OcpiMiddleware,
    PageQuery,
    envelope,
    page_query,
    paginated,
)
from csms.store import partners, roaming_catalog


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
    _tariff_routes(router, services)
    token_routes(router, services)
    command_routes(router, services)
    hub_client_routes(router, services)
    app.include_router(router)
    return app


# -- versions and credentials -----------------------------------------------------------------


def _configuration_routes(router: APIRouter, services: OcpiServices) -> None:
    caller_of = authenticated(services)
    Authenticated = Annotated[Caller, Depends(caller_of)]

    @router.get("/versions")
    async def versions(_caller: Authenticated) -> Response:
        """version_information_endpoint §Version information endpoint."""
        version = Version(version=VersionNumber(VERSION), url=services.url(f"/{VERSION}"))
        return envelope([to_json_dict(version)], now=services.clock())

    @router.get(f"/{VERSION}")
    async def version_details(_caller: Authenticated) -> Response:
        """version_information_endpoint §Version details endpoint: our modules and roles."""
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
        body = _credentials(await json_body(request))
        data = await services.partners.register(caller, body)
        return envelope(data, now=services.clock())

    @router.put(f"/{VERSION}/credentials")
    async def put_credentials(caller: Authenticated, request: Request) -> Response:
        body = _credentials(await json_body(request))
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
    Registered = Annotated[Caller, Depends(registered(services))]

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
            raise not_found(f"unknown location {location_id}", OcpiStatus.UNKNOWN_LOCATION)
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
            headers=routing(services, request, caller),
        )

    @router.get(f"/{VERSION}/locations/{{location_id}}")
    async def get_location(caller: Registered, request: Request, location_id: Id36) -> Response:
        found = await one(caller, location_id)
        return envelope(found, now=services.clock(), headers=routing(services, request, caller))

    @router.get(f"/{VERSION}/locations/{{location_id}}/{{evse_uid}}")
    async def get_evse(
        caller: Registered, request: Request, location_id: Id36, evse_uid: Id36
    ) -> Response:
        evse = _evse(await one(caller, location_id), evse_uid)
        return envelope(evse, now=services.clock(), headers=routing(services, request, caller))

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
                    connector, now=services.clock(), headers=routing(services, request, caller)
                )
        raise not_found(f"unknown connector {connector_id}", OcpiStatus.UNKNOWN_LOCATION)


def _evse(location: dict[str, Any], evse_uid: str) -> dict[str, Any]:
    for evse in location.get("evses", ()):
        if evse["uid"] == evse_uid:
            return dict(evse)
    raise not_found(f"unknown EVSE {evse_uid}", OcpiStatus.UNKNOWN_LOCATION)


def _within(location: dict[str, Any], query: PageQuery) -> bool:
    updated = latest_update(location)
    if query.date_from is not None and updated < query.date_from:
        return False
    return query.date_to is None or updated < query.date_to


# -- Sessions and CDRs, Sender interface ------------------------------------------------------


def _session_and_cdr_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(registered(services))]

    async def page_of(
        kind: Literal["sessions", "cdrs"], caller: Caller, request: Request, query: PageQuery
    ) -> Response:
        """A page of the caller's own Sessions or CDRs, with the pagination headers."""
        items, total = await services.database.read(
            lambda s: partners.objects_page(
                s,
                kind,
                partner_id=caller.partner.id,
                date_from=query.date_from,
                date_to=query.date_to,
                offset=query.offset,
                limit=query.limit,
                # A party asking through a hub sees its own only (core.roaming_hub).
                owner=caller.requester.party,
            )
        )
        return paginated(
            items,
            total=total,
            query=query,
            request=request,
            base_url=services.base_url(),
            now=services.clock(),
            headers=routing(services, request, caller),
        )

    @router.get(f"/{VERSION}/sessions")
    async def list_sessions(caller: Registered, request: Request) -> Response:
        """mod_sessions §GET Method: the caller's own Sessions only; date_from is required."""
        return await page_of(
            "sessions", caller, request, page_query(request, date_from_required=True)
        )

    @router.put(f"/{VERSION}/sessions/{{session_id}}/charging_preferences")
    async def charging_preferences(
        caller: Registered, request: Request, session_id: Id36
    ) -> Response:
        """mod_sessions §PUT Method: csms does no preference-based smart charging."""
        raw = await json_body(request)
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
            raise not_found(f"unknown session {session_id}", OcpiStatus.CLIENT_ERROR)
        return envelope(
            ChargingPreferencesResponse.NOT_POSSIBLE.value,
            now=services.clock(),
            headers=routing(services, request, caller),
        )

    @router.get(f"/{VERSION}/cdrs")
    async def list_cdrs(caller: Registered, request: Request) -> Response:
        """mod_cdrs §GET Method: the caller's own CDRs, oldest first."""
        return await page_of("cdrs", caller, request, page_query(request))


# -- Tariffs, Sender interface (mod_tariffs §Sender Interface) --------------------------------


def _tariff_routes(router: APIRouter, services: OcpiServices) -> None:
    Registered = Annotated[Caller, Depends(registered(services))]

    @router.get(f"/{VERSION}/tariffs")
    async def list_tariffs(caller: Registered, request: Request) -> Response:
        """mod_tariffs §GET Method: every Tariff csms keeps, oldest update first, paginated
        and filtered on last_updated. Tariffs are the CPO's own, the same for every party."""
        query = page_query(request)
        items, total = await services.database.read(
            lambda s: roaming_catalog.tariffs_page(
                s,
                date_from=query.date_from,
                date_to=query.date_to,
                offset=query.offset,
                limit=query.limit,
            )
        )
        return paginated(
            [validated_tariff(item) for item in items],
            total=total,
            query=query,
            request=request,
            base_url=services.base_url(),
            now=services.clock(),
            headers=routing(services, request, caller),
        )
