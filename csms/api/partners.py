"""Partner routes: OCPI roaming partners, their onboarding, and which locations they get.

docs/api.md, "Partners"; docs/ocpi.md for what happens on the OCPI side.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import ConfigDict, Field, model_validator

from csms.api.auth import require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page
from csms.core.access import Scope
from csms.core.roaming import Role
from csms.errors import OcpiRequestError, PartnerError, UnsafeTarget
from csms.flows.partners import PartnerFlows, PartnerSpec
from csms.store import locations, partners, roaming_catalog
from csms.store.tables import OcpiPartner, OcpiPartnerLocation

PartnerPath = Annotated[
    str,
    Path(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~-]+$", description="your name for it"
    ),
]
LocationPath = Annotated[
    str, Path(min_length=1, max_length=36, pattern=r"^[\x21-\x7e]+$", description="OCPI id")
]


class PartnerIn(CamelModel):
    """A roaming partner. With `versionsUrl` and `tokenA` csms registers itself with the
    partner; without them csms issues a token A for the partner to register with us."""

    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"countryCode": "NL", "partyId": "EMS", "roles": ["EMSP"], "name": "Example eMSP"}
            ]
        }
    )

    country_code: str = Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2")
    party_id: str = Field(pattern=r"^[A-Za-z0-9]{3}$", description="the partner's party id")
    roles: list[Role] = Field(min_length=1)
    name: str | None = Field(default=None, max_length=255)
    versions_url: str | None = Field(default=None, min_length=1, max_length=255)
    token_a: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        repr=False,
        description="write-only: the token A the partner gave you, to register with it",
    )
    unencoded_token: bool = Field(
        default=False,
        description="the partner sends and expects credentials tokens unencoded (OCPI 2.1.1 "
        "style) instead of Base64",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> "PartnerIn":
        if (self.versions_url is None) != (self.token_a is None):
            raise ValueError("versionsUrl and tokenA go together")
        return self


class EndpointOut(CamelModel):
    identifier: str
    role: str
    url: str


class PartyOut(CamelModel):
    role: str
    country_code: str
    party_id: str
    name: str | None = None


class LocationChoiceOut(CamelModel):
    location_id: str
    charge_point_ids: list[str] | None = Field(
        default=None, description="null: every charger linked to the location"
    )


class PublishedOut(CamelModel):
    all: bool = Field(description="every published location (publish, or publish_allowed_to)")
    locations: list[LocationChoiceOut]


class HubClientOut(CamelModel):
    country_code: str
    party_id: str
    role: str
    status: str = Field(description="CONNECTED, OFFLINE, PLANNED or SUSPENDED")
    last_updated: datetime | None


class PartnerOut(CamelModel):
    id: str
    name: str | None
    country_code: str
    party_id: str
    roles: list[str]
    state: str = Field(description="pending, registered or unregistered")
    versions_url: str | None
    version: str | None
    endpoints: list[EndpointOut] = Field(description="the partner's endpoints we know")
    parties: list[PartyOut] = Field(description="the roles the partner gave in its credentials")
    unencoded_token: bool
    publishes: PublishedOut
    hub_clients: list[HubClientOut] = Field(
        default_factory=list,
        description="a hub's connected parties, as it reported them (mod_hub_client_info)",
    )
    tariffs_held: int = Field(default=0, description="tariffs the partner holds from us")
    pushes_waiting: int = Field(description="pushes queued for the partner")
    pushes_refused: int = Field(description="pushes the partner refused for good")
    last_error: str | None
    registered_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    token_a: str | None = Field(
        default=None,
        description="only in the answer that issued it: give it to the partner with our "
        "versions URL, it is not shown again",
    )
    versions_url_for_partner: str | None = Field(
        default=None, description="our versions endpoint, for the partner to register with"
    )


class PartnerLocationsIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"all": True}, {"locationIds": ["LOC-1", "LOC-2"]}]}
    )

    all: bool = False
    location_ids: list[Annotated[str, Field(min_length=1, max_length=36)]] = Field(
        default_factory=list, max_length=10_000
    )


class PartnerLocationIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{}, {"chargePointIds": ["CP-1", "CP-2"]}]}
    )

    charge_point_ids: list[Annotated[str, Field(min_length=1, max_length=48)]] | None = Field(
        default=None,
        description="null or left out: every charger of the location, now and later; a list "
        "(maybe empty): only these chargers' EVSEs",
    )


def _published(partner: OcpiPartner, rows: dict[str, OcpiPartnerLocation]) -> PublishedOut:
    return PublishedOut(
        all=partner.publish_all,
        locations=[
            LocationChoiceOut(location_id=row.location_id, charge_point_ids=row.charge_point_ids)
            for row in sorted(rows.values(), key=lambda row: row.location_id)
            if row.chosen
        ],
    )


def add_partner_routes(router: APIRouter, ctx: ApiContext, flows: PartnerFlows | None) -> None:
    def enabled() -> PartnerFlows:
        if flows is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "OCPI is off: set ocpi.port to run the OCPI listener"
            )
        return flows

    async def load(partner_id: str) -> PartnerOut:
        async def query(session: Any) -> PartnerOut | None:
            row = await partners.get_partner(session, partner_id)
            if row is None:
                return None
            return await partner_out(session, row)

        found = await ctx.read(query)
        if found is None:
            raise not_found("partner")
        return found

    @router.put("/partners/{partner_id}", tags=["partners"], dependencies=[require(Scope.ADMIN)])
    async def put_partner(
        partner_id: PartnerPath, body: PartnerIn, response: Response
    ) -> PartnerOut:
        """Create or update a roaming partner and start the OCPI credentials handshake."""
        spec = PartnerSpec(
            country_code=body.country_code.upper(),
            party_id=body.party_id.upper(),
            roles=tuple(role.value for role in body.roles),
            name=body.name,
            versions_url=body.versions_url,
            token_a=body.token_a,
            unencoded_token=body.unencoded_token,
        )
        try:
            outcome = await enabled().put(partner_id, spec)
        except UnsafeTarget as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"body.versionsUrl: {exc}"
            ) from exc
        except PartnerError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"registration failed: {exc}") from exc
        response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        out = await load(partner_id)
        if outcome.token_a is not None:
            out.token_a = outcome.token_a
            out.versions_url_for_partner = enabled().identity.versions_url
        return out

    @router.get("/partners", tags=["partners"], dependencies=[require(Scope.READ)])
    async def list_partners(limit: Limit = 50, offset: Offset = 0) -> Page[PartnerOut]:
        async def query(session: Any) -> Page[PartnerOut]:
            rows, total = await partners.list_partners(session, limit=limit, offset=offset)
            return Page[PartnerOut](
                items=[await partner_out(session, row) for row in rows], total=total
            )

        result: Page[PartnerOut] = await ctx.read(query)
        return result

    @router.get("/partners/{partner_id}", tags=["partners"], dependencies=[require(Scope.READ)])
    async def get_partner(partner_id: PartnerPath) -> PartnerOut:
        """The partner: handshake state, its endpoints, and what it gets (never a token)."""
        return await load(partner_id)

    @router.delete(
        "/partners/{partner_id}",
        tags=["partners"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_partner(partner_id: PartnerPath) -> None:
        """Unregister (OCPI credentials DELETE, best effort) and remove the partner."""
        if not await enabled().delete(partner_id):
            raise not_found("partner")

    @router.post(
        "/partners/{partner_id}/credentials", tags=["partners"], dependencies=[require(Scope.ADMIN)]
    )
    async def rotate_credentials(partner_id: PartnerPath) -> PartnerOut:
        """New credentials tokens both ways (OCPI credentials PUT on the partner)."""
        await load(partner_id)
        try:
            await enabled().update_credentials(partner_id)
        except OcpiRequestError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except PartnerError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"update failed: {exc}") from exc
        return await load(partner_id)

    @router.post(
        "/partners/{partner_id}/cdrs/{cdr_id}/credit",
        tags=["partners"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def credit_cdr(
        partner_id: PartnerPath,
        cdr_id: Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[\x20-\x7e]+$")],
    ) -> dict[str, Any]:
        """Cancel a CDR the partner was sent with a Credit CDR (OCPI mod_cdrs §Credit CDRs):
        same data, `total_cost` negated, id `{cdrId}-C`; it is POSTed to the partner."""
        await load(partner_id)
        try:
            credit = await enabled().credit_cdr(partner_id, cdr_id)
        except OcpiRequestError as exc:
            raise HTTPException(exc.http_status, str(exc)) from exc
        if credit is None:
            raise not_found("CDR of this partner")
        return credit

    @router.get(
        "/partners/{partner_id}/locations", tags=["partners"], dependencies=[require(Scope.READ)]
    )
    async def get_partner_locations(partner_id: PartnerPath) -> PublishedOut:
        return (await load(partner_id)).publishes

    @router.put(
        "/partners/{partner_id}/locations", tags=["partners"], dependencies=[require(Scope.ADMIN)]
    )
    async def put_partner_locations(
        partner_id: PartnerPath, body: PartnerLocationsIn
    ) -> PublishedOut:
        """What the partner gets: every published location (`all`) and/or a list."""
        await load(partner_id)
        await _known_locations(ctx, body.location_ids)
        await enabled().set_locations(
            partner_id, publish_all=body.all, location_ids=list(dict.fromkeys(body.location_ids))
        )
        return (await load(partner_id)).publishes

    @router.put(
        "/partners/{partner_id}/locations/{location_id}",
        tags=["partners"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_partner_location(
        partner_id: PartnerPath, location_id: LocationPath, body: PartnerLocationIn
    ) -> PublishedOut:
        """Give the partner one location: all its chargers, or only some (an empty list
        starts it empty; PUT again to add chargers)."""
        await load(partner_id)
        await _known_locations(ctx, [location_id])
        await enabled().choose_location(
            partner_id, location_id, charge_point_ids=body.charge_point_ids
        )
        return (await load(partner_id)).publishes

    @router.delete(
        "/partners/{partner_id}/locations/{location_id}",
        tags=["partners"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_partner_location(partner_id: PartnerPath, location_id: LocationPath) -> None:
        """Stop giving the partner this location (it gets it withdrawn: EVSEs REMOVED)."""
        await load(partner_id)
        if not await enabled().drop_location(partner_id, location_id):
            raise not_found("location of this partner")


async def _known_locations(ctx: ApiContext, location_ids: list[str]) -> None:
    async def query(session: Any) -> list[str]:
        return [i for i in location_ids if await locations.get_location(session, i) is None]

    unknown = await ctx.read(query)
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown location {unknown[0]}")


async def partner_out(session: Any, row: OcpiPartner) -> PartnerOut:
    """The partner as the API and the dashboard show it (never a token)."""
    waiting, refused = await partners.push_counts(session, row.id)
    rows = await partners.partner_locations(session, row.id)
    return PartnerOut(
        id=row.id,
        name=row.name,
        country_code=row.country_code,
        party_id=row.party_id,
        roles=list(row.roles),
        state=row.state,
        versions_url=row.versions_url,
        version=row.version,
        endpoints=[EndpointOut(**endpoint) for endpoint in row.endpoints],
        parties=[
            PartyOut(
                role=str(role.get("role")),
                country_code=str(role.get("country_code")),
                party_id=str(role.get("party_id")),
                name=(role.get("business_details") or {}).get("name"),
            )
            for role in row.their_roles
        ],
        unencoded_token=row.unencoded_token,
        publishes=_published(row, rows),
        hub_clients=[
            HubClientOut(
                country_code=client.country_code,
                party_id=client.party_id,
                role=client.role,
                status=client.status,
                last_updated=client.last_updated,
            )
            for client in await roaming_catalog.hub_clients(session, row.id)
        ],
        tariffs_held=len(await roaming_catalog.held_tariffs(session, row.id)),
        pushes_waiting=waiting,
        pushes_refused=refused,
        last_error=row.last_error,
        registered_at=row.registered_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
