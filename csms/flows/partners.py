"""OCPI partners: onboarding, the credentials handshake both ways, and what each partner gets.

The handshake (OCPI 2.2.1 credentials §Registration) runs in two directions:

- the partner registers with us: the operator creates the partner, csms issues token A
  once; the partner fetches our versions and POSTs its credentials (token B), csms fetches
  its endpoints with B and answers with token C, which the partner uses from then on;
- csms registers with the partner: the operator gives its versions URL and token A; csms
  fetches its endpoints, POSTs our credentials (token B) and keeps the token C it answers.

Tokens presented to csms are kept as SHA-256 digests only (core.roaming.token_digest).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.roaming import (
    VERSION,
    OcpiStatus,
    PartnerReply,
    PartnerState,
    PresentedToken,
    Role,
    credentials_url,
    digests_match,
    pick_version,
    presented_tokens,
    token_digest,
    usable_endpoints,
)
from csms.core.roaming_hub import (
    DIRECT,
    PartyRef,
    Requester,
    is_hub,
    own_parties,
    token_owner_allowed,
)
from csms.errors import (
    NoCommonVersion,
    OcpiRequestError,
    PartnerError,
    PartnerRefused,
)
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import Credentials
from csms.flows.roaming_credits import credit_sent_cdr
from csms.store import partners
from csms.store.db import Database
from csms.store.tables import OcpiPartner

log = structlog.get_logger("csms.ocpi")


class PartnerClient(Protocol):
    """Outgoing OCPI calls (csms.ocpi.client): envelope, headers, SSRF rules, logging.

    Raises UnsafeTarget, PartnerUnreachable or PartnerRefused (an OCPI status outside
    1xxx included); a reply is always a success.
    """

    async def check_target(self, url: str) -> None:
        """Raise UnsafeTarget when csms may not call the URL."""

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str,
        unencoded: bool = False,
        body: Any = None,
        to_party: tuple[str, str] | None = None,
        time_limit: float | None = None,
    ) -> PartnerReply: ...


@dataclass(frozen=True)
class Identity:
    """Who csms is to partners: its party, its name, and where its versions endpoint is."""

    country_code: str
    party_id: str
    name: str
    base_url: Callable[[], str]

    @property
    def versions_url(self) -> str:
        return f"{self.base_url()}/ocpi/versions"

    def credentials(self, token: str) -> dict[str, Any]:
        """Our Credentials object carrying `token` (credentials §Credentials object)."""
        body = {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": Role.CPO,
                    "business_details": {"name": self.name},
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }
        return to_json_dict(Credentials.model_validate(body))


@dataclass(frozen=True)
class PartnerSpec:
    """What the operator says about a partner (PUT /api/v1/partners/{id})."""

    country_code: str
    party_id: str
    roles: tuple[str, ...]
    name: str | None = None
    versions_url: str | None = None
    token_a: str | None = None
    unencoded_token: bool = False


@dataclass(frozen=True)
class PutOutcome:
    created: bool
    partner: OcpiPartner
    # Issued for the partner to register with us; shown once.
    token_a: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who sent an OCPI request: the partner, the token it presented, whether that was
    token A (allowed only on versions and credentials, transport_and_format §Authorization),
    and the party it speaks for (core.roaming_hub: a hub relays for its clients)."""

    partner: OcpiPartner
    token: str
    with_token_a: bool
    requester: Requester = DIRECT

    @property
    def hub(self) -> bool:
        return is_hub(self.partner.roles, self.partner.their_roles)

    @property
    def own(self) -> frozenset[PartyRef]:
        return own_parties(
            self.partner.country_code, self.partner.party_id, self.partner.their_roles
        )

    def may_act_for(self, country_code: str, party_id: str) -> bool:
        """Whether the caller may push, read or use a token of this party."""
        return token_owner_allowed(
            self.requester, hub=self.hub, own=self.own, owner=PartyRef.of(country_code, party_id)
        )


def new_token() -> str:
    """A fresh credentials token: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass
class PartnerFlows:
    """Partners and the credentials module, both directions."""

    database: Database
    client: PartnerClient
    identity: Identity
    clock: Callable[[], datetime]
    # Called with a partner id whenever what it should hold may have changed.
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    # Called when what every partner should hold may have changed.
    everyone_listeners: list[Callable[[], None]] = field(default_factory=list)

    def _changed(self, partner_id: str) -> None:
        for listener in self.listeners:
            listener(partner_id)

    def everyone_changed(self) -> None:
        """What every partner holds may be out of date (a tariff assignment changed which
        tariff connectors name): bring them all in line now, not at the next resync."""
        for listener in self.everyone_listeners:
            listener()

    # -- the operator's side ----------------------------------------------------------------

    async def put(self, partner_id: str, spec: PartnerSpec) -> PutOutcome:
        """Create or update a partner; register with it when its versions URL and token A
        are given, else issue a token A for it (new or unregistered partners only).

        Raises:
            PartnerError: registering with the partner failed; it is kept as pending.
            StoreError: the database failed.
        """
        now = self.clock()
        existing = await self.database.read(lambda s: partners.get_partner(s, partner_id))
        values: dict[str, Any] = {
            "country_code": spec.country_code,
            "party_id": spec.party_id,
            "roles": list(spec.roles),
            "name": spec.name,
            "unencoded_token": spec.unencoded_token,
        }
        token_a = None
        registering = spec.versions_url is not None and spec.token_a is not None
        if existing is None:
            values["state"] = PartnerState.PENDING.value
        if registering:
            values["versions_url"] = spec.versions_url
        elif existing is None or existing.state == PartnerState.UNREGISTERED.value:
            token_a = new_token()
            values.update(state=PartnerState.PENDING.value, token_a_hash=token_digest(token_a))
        created: bool = await self.database.writer.submit(
            lambda s: partners.save_partner(s, partner_id=partner_id, values=values, now=now)
        )
        if registering:
            assert spec.versions_url is not None
            assert spec.token_a is not None
            await self.register_with(partner_id, spec.versions_url, spec.token_a)
        partner = await self._partner(partner_id)
        return PutOutcome(created=created, partner=partner, token_a=token_a)

    async def delete(self, partner_id: str) -> bool:
        """Unregister (DELETE on the partner's credentials, best effort) and forget it."""
        partner = await self.database.read(lambda s: partners.get_partner(s, partner_id))
        if partner is None:
            return False
        url = credentials_url(partner.endpoints)
        if partner.state == PartnerState.REGISTERED.value and partner.outgoing_token and url:
            try:
                await self.client.call(
                    "DELETE", url, token=partner.outgoing_token, unencoded=partner.unencoded_token
                )
            except PartnerError as exc:
                log.warning("ocpi_unregister_failed", partner_id=partner_id, error=str(exc))
        deleted: bool = await self.database.writer.submit(
            lambda s: partners.delete_partner(s, partner_id=partner_id)
        )
        self._changed(partner_id)
        return deleted

    async def register_with(self, partner_id: str, versions_url: str, token_a: str) -> None:
        """csms registers itself with the partner (credentials §Registration, as Sender).

        Raises:
            PartnerError: a step failed; the partner stays pending with `last_error`.
        """
        partner = await self._partner(partner_id)
        unencoded = partner.unencoded_token
        try:
            version, endpoints = await self._fetch_endpoints(versions_url, token_a, unencoded)
            url = credentials_url(endpoints)
            if url is None:
                raise PartnerRefused(
                    "the partner lists no credentials endpoint",
                    http_status=200,
                    ocpi_status=OcpiStatus.NO_MATCHING_ENDPOINTS,
                )
            # The partner fetches our endpoints with token B while our POST is open
            # (credentials §POST Method), so B must be valid before we send it.
            token_b = new_token()
            await self._save(
                partner_id,
                token_hash=token_digest(token_b),
                token_a_hash=None,
                version=version,
                endpoints=endpoints,
            )
            reply = await self.client.call(
                "POST",
                url,
                token=token_a,
                unencoded=unencoded,
                body=self.identity.credentials(token_b),
            )
            theirs = _credentials(reply.data)
        except PartnerError as exc:
            await self._save(partner_id, last_error=str(exc))
            log.warning("ocpi_registration_failed", partner_id=partner_id, error=str(exc))
            raise
        await self._save(
            partner_id,
            state=PartnerState.REGISTERED.value,
            outgoing_token=theirs.token,
            their_roles=[to_json_dict(role) for role in theirs.roles],
            versions_url=theirs.url,
            registered_at=self.clock(),
            last_error=None,
        )
        log.info("ocpi_registered", partner_id=partner_id, direction="outgoing")
        self._changed(partner_id)

    async def update_credentials(self, partner_id: str) -> None:
        """Give the partner a new token for us and take its new one (credentials §Updating
        the credentials and resetting the credentials token).

        Raises:
            OcpiRequestError: the partner is not registered (405).
            PartnerError: the partner did not take it; the old tokens stay in force.
        """
        partner = await self._partner(partner_id)
        url = credentials_url(partner.endpoints)
        if partner.state != PartnerState.REGISTERED.value or not partner.outgoing_token or not url:
            raise OcpiRequestError(
                "the partner is not registered",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=405,
            )
        token_b = new_token()
        old_hash = partner.token_hash
        await self._save(partner_id, token_hash=token_digest(token_b))
        try:
            reply = await self.client.call(
                "PUT",
                url,
                token=partner.outgoing_token,
                unencoded=partner.unencoded_token,
                body=self.identity.credentials(token_b),
            )
            theirs = _credentials(reply.data)
        except PartnerError:
            await self._save(partner_id, token_hash=old_hash)
            raise
        await self._save(
            partner_id,
            outgoing_token=theirs.token,
            their_roles=[to_json_dict(role) for role in theirs.roles],
        )
        log.info("ocpi_credentials_updated", partner_id=partner_id, direction="outgoing")

    # -- what a partner gets ----------------------------------------------------------------

    async def set_locations(
        self, partner_id: str, *, publish_all: bool, location_ids: Sequence[str]
    ) -> None:
        """Every published location and/or these: the partner is brought in line at once."""
        await self.database.writer.submit(
            lambda s: partners.set_selection(
                s,
                partner_id=partner_id,
                publish_all=publish_all,
                location_ids=location_ids,
                now=self.clock(),
            )
        )
        self._changed(partner_id)

    async def choose_location(
        self, partner_id: str, location_id: str, *, charge_point_ids: Sequence[str] | None
    ) -> None:
        """Give the partner one location, with all its chargers or only some (maybe none
        yet: the EVSEs follow as chargers are added)."""
        await self.database.writer.submit(
            lambda s: partners.choose_location(
                s,
                partner_id=partner_id,
                location_id=location_id,
                charge_point_ids=charge_point_ids,
                now=self.clock(),
            )
        )
        self._changed(partner_id)

    async def drop_location(self, partner_id: str, location_id: str) -> bool:
        """Stop giving the partner a location it was given explicitly."""
        dropped: bool = await self.database.writer.submit(
            lambda s: partners.drop_location(s, partner_id=partner_id, location_id=location_id)
        )
        self._changed(partner_id)
        return dropped

    async def credit_cdr(self, partner_id: str, cdr_id: str) -> dict[str, Any] | None:
        """Cancel a CDR the partner has with a Credit CDR (flows/roaming_credits.py); None
        when the partner has no such CDR.

        Raises:
            OcpiRequestError: the CDR is a credit itself, or was credited already (409).
        """
        credit = await credit_sent_cdr(
            self.database, partner_id=partner_id, cdr_id=cdr_id, now=self.clock()
        )
        if credit is not None:
            log.info("ocpi_cdr_credited", partner_id=partner_id, cdr_id=cdr_id)
            self._changed(partner_id)
        return credit

    # -- the partner's side: authentication and the credentials module ----------------------

    async def authenticate(self, header: str | None) -> Caller | None:
        """The partner an Authorization header identifies, or None (answered 401)."""
        for presented in presented_tokens(header):
            caller = await self._caller(presented)
            if caller is not None:
                return caller
        return None

    async def _caller(self, presented: PresentedToken) -> Caller | None:
        digest = token_digest(presented.token)
        partner = await self.database.read(lambda s: partners.partner_by_token(s, digest))
        if partner is None:
            return None
        # transport_and_format §Authorization header: 2.2.1 sends the token Base64 encoded;
        # the unencoded form is tolerated only for partners configured so.
        if not presented.encoded and not partner.unencoded_token:
            return None
        if digests_match(partner.token_hash, digest):
            return Caller(partner=partner, token=presented.token, with_token_a=False)
        if digests_match(partner.token_a_hash, digest):
            return Caller(partner=partner, token=presented.token, with_token_a=True)
        return None

    def credentials_for(self, caller: Caller) -> dict[str, Any]:
        """GET credentials: ours, with the token the caller uses (it is only kept hashed)."""
        return self.identity.credentials(caller.token)

    async def register(self, caller: Caller, body: Credentials) -> dict[str, Any]:
        """POST credentials: the partner registers with us (credentials §POST Method).

        Raises:
            OcpiRequestError: 405 when registered already; 2001 when its roles are not the
                party it was created as; 3001/3002 when its endpoints cannot be fetched.
        """
        partner = caller.partner
        if partner.state == PartnerState.REGISTERED.value or not caller.with_token_a:
            raise OcpiRequestError(
                "already registered: use PUT to update",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=405,
            )
        return await self._accept(partner, body, direction="incoming")

    async def update(self, caller: Caller, body: Credentials) -> dict[str, Any]:
        """PUT credentials: new token and endpoints from a registered partner.

        Raises:
            OcpiRequestError: 405 when not registered; as `register` otherwise.
        """
        if caller.partner.state != PartnerState.REGISTERED.value or caller.with_token_a:
            raise OcpiRequestError(
                "not registered: use POST to register",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=405,
            )
        return await self._accept(caller.partner, body, direction="update")

    async def unregister(self, caller: Caller) -> None:
        """DELETE credentials: the partner ends the connection (credentials §DELETE Method).

        Raises:
            OcpiRequestError: 405 when it was not registered.
        """
        if caller.partner.state != PartnerState.REGISTERED.value or caller.with_token_a:
            raise OcpiRequestError(
                "not registered", ocpi_status=OcpiStatus.CLIENT_ERROR, http_status=405
            )
        await self._save(
            caller.partner.id,
            state=PartnerState.UNREGISTERED.value,
            token_hash=None,
            outgoing_token=None,
        )
        log.info("ocpi_unregistered", partner_id=caller.partner.id, direction="incoming")
        self._changed(caller.partner.id)

    async def _accept(
        self, partner: OcpiPartner, body: Credentials, *, direction: str
    ) -> dict[str, Any]:
        own = (partner.country_code.upper(), partner.party_id.upper())
        if not any((r.country_code.upper(), r.party_id.upper()) == own for r in body.roles):
            raise OcpiRequestError(
                f"roles: none is {own[0]}/{own[1]}, the party this partner was set up as",
                ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            )
        try:
            version, endpoints = await self._fetch_endpoints(
                body.url, body.token, partner.unencoded_token
            )
        except NoCommonVersion as exc:
            raise OcpiRequestError(str(exc), ocpi_status=OcpiStatus.UNSUPPORTED_VERSION) from exc
        except PartnerError as exc:
            # credentials §Errors during registration: "the server should add the status
            # code 3001 in the response to the POST from the client".
            raise OcpiRequestError(
                f"cannot use your API: {exc}", ocpi_status=OcpiStatus.CLIENT_API_UNUSABLE
            ) from exc
        token_c = new_token()
        await self._save(
            partner.id,
            state=PartnerState.REGISTERED.value,
            token_hash=token_digest(token_c),
            token_a_hash=None,
            outgoing_token=body.token,
            versions_url=body.url,
            version=version,
            endpoints=endpoints,
            their_roles=[to_json_dict(role) for role in body.roles],
            registered_at=self.clock() if direction == "incoming" else partner.registered_at,
            last_error=None,
        )
        log.info("ocpi_registered", partner_id=partner.id, direction=direction)
        self._changed(partner.id)
        return self.identity.credentials(token_c)

    # -- helpers ----------------------------------------------------------------------------

    async def _fetch_endpoints(
        self, versions_url: str, token: str, unencoded: bool
    ) -> tuple[str, list[dict[str, str]]]:
        """The partner's 2.2.1 endpoints (version_information_endpoint), with its token."""
        versions = await self.client.call("GET", versions_url, token=token, unencoded=unencoded)
        details_url = pick_version(versions.data)
        if details_url is None:
            raise NoCommonVersion(f"the partner's versions endpoint lists no OCPI {VERSION}")
        details = await self.client.call("GET", details_url, token=token, unencoded=unencoded)
        endpoints = usable_endpoints(details.data)
        if not endpoints:
            raise PartnerRefused(
                f"the partner's OCPI {VERSION} details list no endpoints",
                http_status=details.http_status,
                ocpi_status=details.status_code,
            )
        return VERSION, endpoints

    async def _partner(self, partner_id: str) -> OcpiPartner:
        partner = await self.database.read(lambda s: partners.get_partner(s, partner_id))
        assert partner is not None, partner_id
        return partner

    async def _save(self, partner_id: str, **values: Any) -> None:
        now = self.clock()

        async def job(session: AsyncSession) -> None:
            await partners.save_partner(session, partner_id=partner_id, values=values, now=now)

        await self.database.writer.submit(job)


def _credentials(data: Any) -> Credentials:
    """The partner's Credentials object from a reply, or PartnerRefused naming the problem."""
    try:
        # Validated as the JSON it came as (enums from text, DateTimes from OCPI text).
        return Credentials.model_validate_json(orjson.dumps(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PartnerRefused(
            f"the partner's credentials are not valid: {where}: {first['msg']}",
            http_status=200,
            ocpi_status=None,
        ) from exc
