"""Hubs (OCPI 2.2.1 transport_and_format §Message Routing, mod_hub_client_info).

Who an OCPI request speaks for, from its routing headers, and the HubClientInfo Receiver
interface through which a hub reports its connected parties. The rules are in
core.roaming_hub; docs/ocpi.md, "Hubs".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.roaming import OcpiStatus
from csms.core.roaming_hub import ConnectionStatus, PartyRef, Refusal, requester
from csms.errors import OcpiRequestError
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi_roaming import ClientInfo
from csms.flows.partners import Caller
from csms.flows.roaming_tokens import invalid_fields
from csms.store import roaming_catalog
from csms.store.db import Database
from csms.store.tables import OcpiHubClient

log = structlog.get_logger("csms.ocpi")


def from_party(country_code: str | None, party_id: str | None) -> PartyRef | None:
    """The OCPI-from-* headers as a party; None unless both are there and well formed."""
    if not country_code or not party_id:
        return None
    if len(country_code.strip()) != 2 or len(party_id.strip()) != 3:
        raise OcpiRequestError(
            "OCPI-from-country-code/party-id: a CiString(2) and a CiString(3)",
            ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            http_status=400,
        )
    return PartyRef.of(country_code.strip(), party_id.strip())


@dataclass
class HubFlows:
    """Routing of requests from hubs, and the hub's client list."""

    database: Database

    async def routed(self, caller: Caller, party: PartyRef | None) -> Caller:
        """The caller with the party it speaks for (core.roaming_hub.requester).

        Raises:
            OcpiRequestError: 2001 when the partner names a party it may not speak for.
        """
        status = None
        hub = caller.hub
        if hub and party is not None and party not in caller.own:
            found = await self.database.read(
                lambda s: roaming_catalog.get_hub_client(
                    s, partner_id=caller.partner.id, party=party
                )
            )
            status = None if found is None else ConnectionStatus(found.status)
        decided = requester(hub=hub, own=caller.own, from_party=party, client_status=status)
        if isinstance(decided, Refusal):
            assert party is not None
            reason = (
                "the hub reported it SUSPENDED"
                if decided is Refusal.SUSPENDED
                else "not a party of yours"
            )
            raise OcpiRequestError(
                f"OCPI-from {party.country_code}/{party.party_id}: {reason}",
                ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            )
        return replace(caller, requester=decided)

    # -- HubClientInfo, Receiver interface (mod_hub_client_info §Receiver Interface) --------

    async def get_client(self, caller: Caller, party: PartyRef) -> dict[str, Any]:
        """A client of the calling hub as csms holds it (404 when unknown)."""
        found = await self.database.read(
            lambda s: roaming_catalog.get_hub_client(s, partner_id=caller.partner.id, party=party)
        )
        if found is None:
            raise OcpiRequestError(
                "unknown client", ocpi_status=OcpiStatus.CLIENT_ERROR, http_status=404
            )
        return client_info(found)

    async def put_client(self, caller: Caller, party: PartyRef, raw: bytes) -> None:
        """Keep what the hub says of one of its clients (PUT: new or updated ClientInfo).

        Raises:
            OcpiRequestError: 403 from a partner that is not a hub; 2001 for an invalid
                ClientInfo or one whose party differs from its URL.
        """
        if not caller.hub:
            raise OcpiRequestError(
                "only a hub reports its clients (mod_hub_client_info)",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=403,
            )
        try:
            info = ClientInfo.model_validate_json(raw)
        except ValidationError as exc:
            raise OcpiRequestError(
                invalid_fields(exc), ocpi_status=OcpiStatus.INVALID_PARAMETERS
            ) from exc
        if PartyRef.of(info.country_code, info.party_id) != party:
            raise OcpiRequestError(
                "country_code/party_id: differ from the URL's",
                ocpi_status=OcpiStatus.INVALID_PARAMETERS,
            )

        async def job(session: AsyncSession) -> bool:
            return await roaming_catalog.put_hub_client(
                session,
                partner_id=caller.partner.id,
                party=party,
                role=info.role.value,
                status=info.status.value,
                last_updated=info.last_updated,
            )

        await self.database.writer.submit(job)
        log.info(
            "ocpi_hub_client",
            partner_id=caller.partner.id,
            party=f"{party.country_code}/{party.party_id}",
            status=info.status.value,
        )

    async def clients(self, partner_id: str) -> list[dict[str, Any]]:
        """Every client a hub partner reported (for the operator API)."""
        rows = await self.database.read(lambda s: roaming_catalog.hub_clients(s, partner_id))
        return [client_info(row) for row in rows]


def client_info(row: OcpiHubClient) -> dict[str, Any]:
    assert row.last_updated is not None
    return to_json_dict(
        ClientInfo.model_validate_json(
            orjson.dumps(
                {
                    "party_id": row.party_id,
                    "country_code": row.country_code,
                    "role": row.role,
                    "status": row.status,
                    "last_updated": row.last_updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
        )
    )
