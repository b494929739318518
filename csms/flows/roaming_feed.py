"""The OCPI feed's routing: which outbox event becomes which push for which partner
(OCPI 2.2.1, csms as Sender; the loops that run it are in csms.flows.roaming_push).

A Location or EVSE status goes to every partner holding that location, a Session or CDR
to the partner of the token's owner (addressed to that party, which a hub relays to), a
Tariff to every partner with a Tariffs receiver. docs/ocpi.md, "Pushes".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.roaming import (
    InterfaceRole,
    ModuleID,
    PushKind,
    Selection,
    endpoint_url,
    for_token_owner,
    is_selected,
)
from csms.core.roaming_hub import PartyRef
from csms.core.session import AuthMethod
from csms.events.envelope import EventType
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi import Cdr, Session
from csms.flows.roaming_tariffs import tariff_key
from csms.store import chargers, locations, partners, tokens
from csms.store.tables import OcpiPartner, OcpiPartnerLocation, OcpiToken, OutboxEvent

FEED_TYPES = (
    EventType.LOCATION_UPDATED.value,
    EventType.EVSE_STATUS.value,
    EventType.SESSION_STARTED.value,
    EventType.SESSION_UPDATED.value,
    EventType.SESSION_STOPPED.value,
    EventType.CDR_CREATED.value,
    EventType.TARIFF_UPDATED.value,
)


@dataclass
class PartnerPlan:
    """A registered partner as the feed routes to it."""

    partner: OcpiPartner
    selection: Selection
    rows: dict[str, OcpiPartnerLocation]

    def holds(self, location: dict[str, Any]) -> bool:
        """Whether the partner is to hold the location, or holds it still."""
        row = self.rows.get(location["id"])
        return is_selected(self.selection, location) or (row is not None and row.sent is not None)

    def has(self, module: ModuleID) -> bool:
        return endpoint_url(self.partner.endpoints, module, InterfaceRole.RECEIVER) is not None


@dataclass
class FeedRouter:
    """Turns outbox events into pushes, inside the feed's transaction."""

    session: AsyncSession
    plans: dict[str, PartnerPlan]
    now: datetime
    locations_of: dict[str, str | None] = field(default_factory=dict)
    metas: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # A session sends many events (session.updated per MeterValues): one token lookup.
    owners: dict[str, OcpiToken | None] = field(default_factory=dict)

    async def route(self, row: OutboxEvent) -> None:
        data = row.data
        if row.type == EventType.LOCATION_UPDATED.value:
            await self._location(data["ocpi"])
        elif row.type == EventType.EVSE_STATUS.value:
            await self._evse(row.charge_point_id, data["ocpi"])
        elif row.type == EventType.CDR_CREATED.value:
            if data.get("ocpi") is not None:
                await self._cdr(row.charge_point_id, data["ocpi"])
        elif row.type == EventType.TARIFF_UPDATED.value:
            # mod_tariffs §Push model: every partner with a Tariffs receiver gets it.
            for plan in self.plans.values():
                if plan.has(ModuleID.TARIFFS):
                    await self._enqueue(plan, tariff_key(data["tariffId"]), PushKind.TARIFF_PUT)
        else:
            await self._session(row.type, row.charge_point_id, data["ocpi"])

    async def _location(self, location: dict[str, Any]) -> None:
        for plan in self.plans.values():
            if plan.has(ModuleID.LOCATIONS) and plan.holds(location):
                await self._enqueue(plan, f"location:{location['id']}", PushKind.LOCATION_PUT)

    async def _evse(self, charge_point_id: str, status: dict[str, Any]) -> None:
        meta = await self._meta_of_charger(charge_point_id)
        if meta is None:
            return
        body = {
            "location_id": meta["id"],
            "evse_uid": status["evse_uid"],
            "status": status["status"],
            "last_updated": status["last_updated"],
        }
        for plan in self.plans.values():
            if not plan.has(ModuleID.LOCATIONS) or not plan.holds(meta):
                continue
            choice = plan.selection.choices.get(meta["id"])
            if choice is not None and choice.charge_point_ids is not None:
                if charge_point_id not in choice.charge_point_ids:
                    continue
            key = f"evse:{meta['id']}/{status['evse_uid']}"
            await self._enqueue(plan, key, PushKind.EVSE_PATCH, body)

    async def _session(self, event_type: str, charge_point_id: str, found: dict[str, Any]) -> None:
        owner = await self._owner(found["cdr_token"]["uid"])
        if owner is None:
            return
        plan, token = owner
        session_id = found["id"]
        kept = await partners.get_session(
            self.session, partner_id=plan.partner.id, session_id=session_id
        )
        if kept is not None:
            method, reference = AuthMethod(kept.auth_method), kept.authorization_reference
        else:
            method, reference = await self._authorization(token.id, charge_point_id)
        party = _owner_party(token)
        converted = to_json_dict(
            Session.model_validate_json(
                orjson.dumps(
                    for_token_owner(
                        found,
                        token=tokens.token_state(token),
                        method=method,
                        authorization_reference=reference,
                    )
                )
            )
        )
        assert token.id is not None
        await partners.save_session(
            self.session,
            partner_id=plan.partner.id,
            session_id=session_id,
            token_id=token.id,
            auth_method=method.value,
            authorization_reference=reference,
            data=converted,
            last_updated=datetime.fromisoformat(converted["last_updated"]),
            owner=party,
        )
        if not plan.has(ModuleID.SESSIONS):
            return
        # mod_sessions §Push model: PUT the new Session, PATCH its changes; the final PUT
        # carries the complete charging periods (core.roaming.session_patch).
        updated = event_type == EventType.SESSION_UPDATED.value
        kind = PushKind.SESSION_PATCH if kept is not None and updated else PushKind.SESSION_PUT
        await self._enqueue(plan, f"session:{session_id}", kind, converted, to=party)

    async def _cdr(self, charge_point_id: str, found: dict[str, Any]) -> None:
        owner = await self._owner(found["cdr_token"]["uid"])
        if owner is None:
            return
        plan, token = owner
        kept = await partners.get_session(
            self.session, partner_id=plan.partner.id, session_id=found.get("session_id", "")
        )
        if kept is not None:
            method, reference = AuthMethod(kept.auth_method), kept.authorization_reference
        else:
            method, reference = await self._authorization(token.id, charge_point_id)
        converted = to_json_dict(
            Cdr.model_validate_json(
                orjson.dumps(
                    for_token_owner(
                        found,
                        token=tokens.token_state(token),
                        method=method,
                        authorization_reference=reference,
                    )
                )
            )
        )
        party = _owner_party(token)
        created = await partners.save_cdr(
            self.session,
            partner_id=plan.partner.id,
            cdr_id=converted["id"],
            data=converted,
            last_updated=datetime.fromisoformat(converted["last_updated"]),
            owner=party,
        )
        # mod_cdrs §Flow and Lifecycle: a CDR "cannot be changed or replaced once sent".
        if created and plan.has(ModuleID.CDRS):
            await self._enqueue(
                plan, f"cdr:{converted['id']}", PushKind.CDR_POST, converted, to=party
            )

    async def _owner(self, id_tag: str) -> tuple[PartnerPlan, OcpiToken] | None:
        if id_tag not in self.owners:
            self.owners[id_tag] = await tokens.token_by_id_tag(self.session, id_tag)
        token = self.owners[id_tag]
        if token is None:
            return None
        plan = self.plans.get(token.partner_id)
        return None if plan is None else (plan, token)

    async def _authorization(
        self, token_id: int | None, charge_point_id: str
    ) -> tuple[AuthMethod, str | None]:
        assert token_id is not None
        found = await tokens.latest_authorization(
            self.session, token_id=token_id, charge_point_id=charge_point_id
        )
        if found is None:
            return AuthMethod.WHITELIST, None
        return AuthMethod(found.method), found.authorization_reference

    async def _meta_of_charger(self, charge_point_id: str) -> dict[str, Any] | None:
        """The location a charger is linked to: its id and publish flags."""
        if charge_point_id not in self.locations_of:
            charger = await chargers.get_charge_point(self.session, charge_point_id)
            self.locations_of[charge_point_id] = None if charger is None else charger.location_id
        location_id = self.locations_of[charge_point_id]
        if location_id is None:
            return None
        if location_id not in self.metas:
            row = await locations.get_location(self.session, location_id)
            self.metas[location_id] = None if row is None else {**row.data, "id": row.id}
        return self.metas[location_id]

    async def _enqueue(
        self,
        plan: PartnerPlan,
        key: str,
        kind: PushKind,
        body: dict[str, Any] | None = None,
        to: PartyRef | None = None,
    ) -> None:
        await partners.enqueue(
            self.session,
            partner_id=plan.partner.id,
            key=key,
            kind=kind,
            body=body,
            now=self.now,
            to=to,
        )


def _owner_party(token: OcpiToken) -> PartyRef:
    """The party a partner's token belongs to: the Session or CDR is for it."""
    return PartyRef.of(token.country_code, token.party_id)
