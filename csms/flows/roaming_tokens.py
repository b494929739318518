"""Partners' tokens (OCPI 2.2.1 mod_tokens, CPO as Receiver) and their use at chargers.

eMSPs push their drivers' tokens; when a charger sends Authorize or StartTransaction with
an idTag that is a partner's token, csms decides per the token's `whitelist`: from its
copy, or by asking the eMSP in real time within `ocpi.authorize_timeout`, falling back as
the whitelist type allows (core.roaming). The decision is recorded, so the Session and CDR
say how the driver was authorized.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import AuthorizationStatus, IdTagInfo
from csms.core.roaming import (
    COMMAND_WINDOW_SECONDS,
    Authorization,
    InterfaceRole,
    ModuleID,
    OcpiStatus,
    PartnerState,
    TokenState,
    asks_emsp,
    command_decision,
    earlier_decision,
    ended_partner_decision,
    endpoint_url,
    id_tag_for,
    real_time_decision,
    unreachable_decision,
    whitelist_decision,
)
from csms.core.session import AuthMethod
from csms.errors import OcpiRequestError, PartnerError, PartnerRefused
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import AuthorizationInfo, Token
from csms.flows.partners import Caller, PartnerClient
from csms.store import chargers, partners, tokens
from csms.store.db import Database
from csms.store.tables import OcpiPartner, OcpiToken

log = structlog.get_logger("csms.ocpi")


def owns(caller: Caller, country_code: str, party_id: str) -> bool:
    """Whether a country code and party id are the caller's: its own or a role it gave, or
    through a hub the client it speaks for (core.roaming_hub.token_owner_allowed).

    transport_and_format §Client Owned Object Push, §Errors: objects under another party
    may be refused with HTTP 404.
    """
    return caller.may_act_for(country_code, party_id)


def parse_token(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """A Token from JSON, checked against mod_tokens §Token Object, as JSON again.

    Raises:
        OcpiRequestError: 2001 naming the first field that is wrong.
    """
    try:
        text = raw if isinstance(raw, bytes) else orjson.dumps(raw)
        return to_json_dict(Token.model_validate_json(text))
    except ValidationError as exc:
        raise OcpiRequestError(
            invalid_fields(exc), ocpi_status=OcpiStatus.INVALID_PARAMETERS
        ) from exc


def invalid_fields(exc: ValidationError) -> str:
    """A validation error as one line naming each field (status_codes §2001)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors()[:5]
    )


@dataclass(frozen=True)
class TokenKey:
    """A token's place in the Receiver URL: {country_code}/{party_id}/{token_uid}?type=."""

    country_code: str
    party_id: str
    uid: str
    type: str


class TokenFlows:
    """The Tokens module's Receiver interface, and the roaming side of authorization."""

    def __init__(
        self,
        *,
        database: Database,
        client: PartnerClient,
        clock: Callable[[], datetime],
        authorize_timeout: float,
    ) -> None:
        self._database = database
        self._client = client
        self._clock = clock
        self._authorize_timeout = authorize_timeout

    # -- Receiver interface (mod_tokens §Receiver Interface) ---------------------------------

    async def get(self, caller: Caller, key: TokenKey) -> dict[str, Any]:
        """The token as csms holds it.

        Raises:
            OcpiRequestError: 404 when unknown or not the caller's.
        """
        row = await self._owned(caller, key)
        if row is None:
            raise OcpiRequestError(
                "unknown token", ocpi_status=OcpiStatus.UNKNOWN_TOKEN, http_status=404
            )
        return row.data

    async def put(self, caller: Caller, key: TokenKey, raw: bytes) -> bool:
        """Store a pushed token; True when it is new (answered HTTP 201).

        Raises:
            OcpiRequestError: 2001 for an invalid token or one that differs from its URL,
                404 for a party that is not the caller's.
        """
        self._check_party(caller, key)
        token = parse_token(raw)
        _same_as_url(token, key)
        return await self._save(caller, token, pushed=True)

    async def patch(self, caller: Caller, key: TokenKey, raw: bytes) -> None:
        """Apply a partial update (mod_tokens §PATCH Method: "SHALL contain last_updated").

        Raises:
            OcpiRequestError: 404 for an unknown token; 2001 when the result is invalid.
        """
        self._check_party(caller, key)
        try:
            changes = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise OcpiRequestError(
                "the body is not JSON", ocpi_status=OcpiStatus.INVALID_PARAMETERS, http_status=400
            ) from exc
        if not isinstance(changes, dict) or "last_updated" not in changes:
            raise OcpiRequestError(
                "last_updated: a PATCH must contain it", ocpi_status=OcpiStatus.INVALID_PARAMETERS
            )
        row = await self._owned(caller, key)
        if row is None:
            raise OcpiRequestError(
                "unknown token", ocpi_status=OcpiStatus.UNKNOWN_TOKEN, http_status=404
            )
        token = parse_token({**row.data, **changes})
        _same_as_url(token, key)
        await self._save(caller, token, pushed=True)

    async def keep_from_command(self, caller: Caller, token: dict[str, Any]) -> OcpiToken:
        """A token sent with START_SESSION or RESERVE_NOW: kept so that its Session and CDR
        carry it (mod_commands §StartSession Object: "the information of the Token SHALL be
        put in the Session and CDR"), without making it a pushed one."""
        await self._save(caller, token, pushed=False)
        row = await self._database.read(lambda s: _find(s, token))
        assert row is not None
        return row

    async def record(
        self,
        *,
        token_id: int,
        charge_point_id: str | None,
        decision: Authorization,
    ) -> None:
        """Keep how a token was authorized, for its Session and CDR."""
        now = self._clock()
        await self._database.writer.submit(
            lambda s: tokens.add_authorization(
                s,
                token_id=token_id,
                charge_point_id=charge_point_id,
                method=decision.method.value,
                authorization_reference=decision.authorization_reference,
                status=decision.info.status.value,
                now=now,
            )
        )

    async def _save(self, caller: Caller, token: dict[str, Any], *, pushed: bool) -> bool:
        id_tag = id_tag_for(
            country_code=token["country_code"],
            party_id=token["party_id"],
            uid=token["uid"],
            token_type=token["type"],
        )
        last_updated = datetime.fromisoformat(token["last_updated"])

        async def job(session: AsyncSession) -> bool:
            kept = await _find(session, token)
            if kept is not None and kept.partner_id != caller.partner.id:
                # Two partners set up with one party: neither takes the other's tokens.
                raise OcpiRequestError(
                    "the token belongs to another partner",
                    ocpi_status=OcpiStatus.CLIENT_ERROR,
                    http_status=404,
                )
            created, _ = await tokens.save_token(
                session,
                partner_id=caller.partner.id,
                token=token,
                id_tag=id_tag,
                pushed=pushed,
                last_updated=last_updated,
            )
            return created

        created: bool = await self._database.writer.submit(job)
        return created

    def _check_party(self, caller: Caller, key: TokenKey) -> None:
        if not owns(caller, key.country_code, key.party_id):
            raise OcpiRequestError(
                f"{key.country_code}/{key.party_id} is not your party",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=404,
            )

    async def _owned(self, caller: Caller, key: TokenKey) -> OcpiToken | None:
        self._check_party(caller, key)
        row = await self._database.read(
            lambda s: tokens.get_token(
                s,
                country_code=key.country_code,
                party_id=key.party_id,
                uid=key.uid,
                token_type=key.type,
            )
        )
        if row is None or row.partner_id != caller.partner.id:
            return None
        return row

    # -- authorization at chargers ----------------------------------------------------------

    async def authorize(
        self, *, id_tag: str, charge_point_id: str, now: datetime, starting: bool = False
    ) -> IdTagInfo | None:
        """The IdTagInfo for a partner's token, or None when the idTag is not one.

        `starting`: for a StartTransaction, an Accepted authorization of the same token at
        the same charger within the command window stands (the driver was just authorized;
        asking again would only delay the answer to the charger).
        """
        row = await self._database.read(lambda s: tokens.token_by_id_tag(s, id_tag))
        if row is None:
            return None
        assert row.id is not None
        token = tokens.token_state(row)
        partner = await self._database.read(lambda s: partners.get_partner(s, row.partner_id))
        decision = await self._decide(
            row, token, partner, charge_point_id=charge_point_id, now=now, starting=starting
        )
        await self.record(token_id=row.id, charge_point_id=charge_point_id, decision=decision)
        log.info(
            "ocpi_token_authorized",
            partner_id=row.partner_id,
            method=decision.method.value,
            status=decision.info.status.value,
        )
        return decision.info

    async def _decide(
        self,
        row: OcpiToken,
        token: TokenState,
        partner: OcpiPartner | None,
        *,
        charge_point_id: str,
        now: datetime,
        starting: bool,
    ) -> Authorization:
        assert row.id is not None
        token_id = row.id
        if partner is None or partner.state != PartnerState.REGISTERED.value:
            return ended_partner_decision(token)
        since = now - timedelta(seconds=COMMAND_WINDOW_SECONDS)
        recent = await self._database.read(
            lambda s: tokens.latest_authorization(
                s, token_id=token_id, charge_point_id=charge_point_id, since=since
            )
        )
        if recent is not None and recent.method == AuthMethod.COMMAND.value:
            return command_decision(token, authorization_reference=recent.authorization_reference)
        if starting and recent is not None and recent.status == AuthorizationStatus.ACCEPTED:
            return earlier_decision(
                token,
                method=AuthMethod(recent.method),
                authorization_reference=recent.authorization_reference,
            )
        if not asks_emsp(token.whitelist):
            return whitelist_decision(token)
        return await self._ask(partner, row, token, charge_point_id=charge_point_id)

    async def _ask(
        self, partner: OcpiPartner, row: OcpiToken, token: TokenState, *, charge_point_id: str
    ) -> Authorization:
        """mod_tokens §Real-time authorization: POST {tokens}/{uid}/authorize?type=, bounded
        by `ocpi.authorize_timeout`; an eMSP that does not answer in time is unreachable."""
        url = endpoint_url(partner.endpoints, ModuleID.TOKENS, InterfaceRole.SENDER)
        if url is None or partner.outgoing_token is None:
            return unreachable_decision(token)
        references = await self._location_references(charge_point_id)
        target = f"{url.rstrip('/')}/{quote(token.uid, safe='')}/authorize?type={token.type.value}"
        try:
            async with asyncio.timeout(self._authorize_timeout):
                reply = await self._client.call(
                    "POST",
                    target,
                    token=partner.outgoing_token,
                    unencoded=partner.unencoded_token,
                    body=references,
                    # Through a hub, the request is for the token's owner
                    # (transport_and_format §Party to Party via Hub).
                    to_party=(token.country_code.upper(), token.party_id.upper()),
                    time_limit=self._authorize_timeout,
                )
        except PartnerRefused as exc:
            if exc.http_status == 404 or exc.ocpi_status == OcpiStatus.UNKNOWN_TOKEN:
                return real_time_decision(token, allowed=None, authorization_reference=None)
            log.warning("ocpi_authorize_failed", partner_id=partner.id, error=str(exc))
            return unreachable_decision(token)
        except (PartnerError, TimeoutError) as exc:
            log.warning(
                "ocpi_authorize_unreachable", partner_id=partner.id, error=str(exc) or "timeout"
            )
            return unreachable_decision(token)
        try:
            info = AuthorizationInfo.model_validate_json(orjson.dumps(reply.data))
        except (ValidationError, orjson.JSONEncodeError) as exc:
            log.warning("ocpi_authorize_invalid", partner_id=partner.id, error=str(exc)[:300])
            return unreachable_decision(token)
        return real_time_decision(
            token, allowed=info.allowed, authorization_reference=info.authorization_reference
        )

    async def _location_references(self, charge_point_id: str) -> dict[str, Any] | None:
        """mod_tokens §LocationReferences for the charger asking, when it has a location."""
        charger = await self._database.read(lambda s: chargers.get_charge_point(s, charge_point_id))
        if charger is None or charger.location_id is None:
            return None
        return {"location_id": charger.location_id}


def _same_as_url(token: dict[str, Any], key: TokenKey) -> None:
    """transport_and_format §Errors: an object whose id differs from its URL is 2001."""
    pairs = (
        ("country_code", key.country_code),
        ("party_id", key.party_id),
        ("uid", key.uid),
        ("type", key.type),
    )
    for name, value in pairs:
        same = (
            token[name] == value
            if name in ("uid", "type")
            else token[name].upper() == value.upper()
        )
        if not same:
            raise OcpiRequestError(
                f"{name}: {token[name]!r} differs from the URL's {value!r}",
                ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            )


async def _find(session: AsyncSession, token: dict[str, Any]) -> OcpiToken | None:
    return await tokens.get_token(
        session,
        country_code=token["country_code"],
        party_id=token["party_id"],
        uid=token["uid"],
        token_type=token["type"],
    )
