"""Pushes to roaming partners, fed from the transactional outbox (OCPI 2.2.1, CPO as Sender).

Three loops:

- the **feed** reads committed outbox events (`location.updated`, `evse.status`,
  `session.*`, `cdr.created`) past its saved position and turns each into pushes for the
  partners concerned, in one transaction with the new position, so an event is turned
  into pushes exactly once, and a partner's outage does not hold the outbox back;
- the **sender** sends each partner's pushes strictly in order, retrying a partner that
  is down with backoff (the pushes wait in the database, across restarts too); a newer
  push of the same Location, EVSE status or Session replaces an unsent one, so a partner
  back from an outage gets the latest state, and every CDR;
- the **resync** checks, on every change of a partner and every `ocpi.resync_interval`,
  that each partner holds exactly its locations and EVSEs, and queues what differs.

OCPI itself says messages "SHOULD NOT be queued" and leaves catching up to the receiver's
GET (transport_and_format §Offline behaviour); csms offers both: every GET works, and
nothing is dropped while a partner is down. docs/ocpi.md, "Pushes".

One csms node runs the feed: outbox ids must commit in id order, which one writer
guarantees (several nodes on one PostgreSQL are the scale-out issue's subject).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import format_utc
from csms.core.roaming import (
    InterfaceRole,
    ModuleID,
    PushKind,
    Selection,
    endpoint_url,
    evse_uids,
    falls_back_to_put,
    for_token_owner,
    is_selected,
    retry_delay,
    session_patch,
    withdrawn_location,
)
from csms.core.session import AuthMethod
from csms.errors import PartnerRefused, PartnerUnreachable, StoreError, UnsafeTarget
from csms.events.envelope import EventType
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi import Cdr, Session
from csms.flows.partners import PartnerClient
from csms.flows.roaming_locations import LocationState, PartnerLocations, validated, view_for
from csms.store import chargers, locations, partners, tokens
from csms.store.db import Database
from csms.store.tables import (
    OcpiPartner,
    OcpiPartnerLocation,
    OcpiPush,
    OcpiToken,
    OutboxEvent,
)

log = structlog.get_logger("csms.ocpi")

FEED_TYPES = (
    EventType.LOCATION_UPDATED.value,
    EventType.EVSE_STATUS.value,
    EventType.SESSION_STARTED.value,
    EventType.SESSION_UPDATED.value,
    EventType.SESSION_STOPPED.value,
    EventType.CDR_CREATED.value,
)
FEED_BATCH = 500
IDLE = 5.0

# A job run after a push went through, in the transaction that removes it from the queue.
AfterSent = Callable[[AsyncSession], Awaitable[None]]


@dataclass
class _PartnerPlan:
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
class _Router:
    """Turns outbox events into pushes, inside the feed's transaction."""

    session: AsyncSession
    plans: dict[str, _PartnerPlan]
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
        )
        if not plan.has(ModuleID.SESSIONS):
            return
        # mod_sessions §Push model: PUT the new Session, PATCH its changes; the final PUT
        # carries the complete charging periods (core.roaming.session_patch).
        updated = event_type == EventType.SESSION_UPDATED.value
        kind = PushKind.SESSION_PATCH if kept is not None and updated else PushKind.SESSION_PUT
        await self._enqueue(plan, f"session:{session_id}", kind, converted)

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
        created = await partners.save_cdr(
            self.session,
            partner_id=plan.partner.id,
            cdr_id=converted["id"],
            data=converted,
            last_updated=datetime.fromisoformat(converted["last_updated"]),
        )
        # mod_cdrs §Flow and Lifecycle: a CDR "cannot be changed or replaced once sent".
        if created and plan.has(ModuleID.CDRS):
            await self._enqueue(plan, f"cdr:{converted['id']}", PushKind.CDR_POST, converted)

    async def _owner(self, id_tag: str) -> tuple[_PartnerPlan, OcpiToken] | None:
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
        plan: _PartnerPlan,
        key: str,
        kind: PushKind,
        body: dict[str, Any] | None = None,
    ) -> None:
        await partners.enqueue(
            self.session, partner_id=plan.partner.id, key=key, kind=kind, body=body, now=self.now
        )


class PushDelivery:
    """The feed, the sender and the resync of OCPI pushes (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        client: PartnerClient,
        views: PartnerLocations,
        country_code: str,
        party_id: str,
        clock: Callable[[], datetime],
        retry_ceiling: float,
        resync_interval: float,
    ) -> None:
        self._database = database
        self._client = client
        self._views = views
        self._party = (country_code, party_id)
        self._clock = clock
        self._retry_ceiling = retry_ceiling
        self._resync_interval = resync_interval
        self._wake_feed = asyncio.Event()
        self._wake_sender = asyncio.Event()
        self._wake_resync = asyncio.Event()
        self._changed: set[str] = set()
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._has_partners: bool | None = None
        self._rng = random.Random()

    def wake(self) -> None:
        """New events were committed (a writer listener)."""
        self._wake_feed.set()

    def wake_sender(self) -> None:
        """New pushes were queued outside the feed (command results)."""
        self._wake_sender.set()

    def partner_changed(self, partner_id: str) -> None:
        """What a partner should hold may have changed: resync it now."""
        self._changed.add(partner_id)
        self._has_partners = None
        self._wake_resync.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._feed_loop(), name="ocpi-feed")
            tasks.create_task(self._send_loop(), name="ocpi-sender")
            tasks.create_task(self._resync_loop(), name="ocpi-resync")

    # -- the feed ---------------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        while True:
            self._wake_feed.clear()
            handled = 0
            try:
                handled = await self._feed_pass()
            except StoreError as exc:
                log.warning("ocpi_feed_paused", error=str(exc))
            except Exception:
                log.exception("ocpi_feed_failed")
            if handled:
                self._wake_sender.set()
            if handled < FEED_BATCH:
                await _wait(self._wake_feed, IDLE)

    async def _feed_pass(self) -> int:
        """Turn the next events into pushes; how many events were handled."""
        if self._has_partners is None:
            found = await self._database.read(partners.registered_partners)
            self._has_partners = bool(found)

        async def due(session: AsyncSession) -> bool:
            position = await partners.feed_position(session)
            if position is None or not self._has_partners:
                return position != await partners.last_event_id(session)
            return await partners.has_events_after(session, position=position, types=FEED_TYPES)

        # An empty pass commits nothing: a commit would wake the feed again.
        if not await self._database.read(due):
            return 0
        handled: int = await self._database.writer.submit(self._feed_job)
        return handled

    async def _feed_job(self, session: AsyncSession) -> int:
        now = self._clock()
        position = await partners.feed_position(session)
        newest = await partners.last_event_id(session)
        registered = await partners.registered_partners(session)
        if position is None or not registered:
            # Nobody to push to: skip ahead; a partner registering later gets a full resync.
            await partners.move_feed(session, position=newest, now=now)
            return 0
        rows = await partners.events_after(
            session, position=position, upto=newest, types=FEED_TYPES, limit=FEED_BATCH
        )
        plans = {}
        for partner in registered:
            kept = await partners.partner_locations(session, partner.id)
            plans[partner.id] = _PartnerPlan(
                partner=partner, selection=partners.selection_of(partner, kept), rows=kept
            )
        router = _Router(session=session, plans=plans, now=now)
        for row in rows:
            try:
                await router.route(row)
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                # An event we cannot turn into OCPI must not stop the others.
                log.error("ocpi_feed_event_skipped", event_id=row.event_id, error=str(exc)[:300])
        position = rows[-1].id if len(rows) == FEED_BATCH else newest
        assert position is not None
        await partners.move_feed(session, position=position, now=now)
        return len(rows)

    # -- the sender -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while True:
                self._wake_sender.clear()
                soonest = IDLE
                try:
                    heads = await self._database.read(partners.push_heads)
                except StoreError as exc:
                    log.warning("ocpi_sender_paused", error=str(exc))
                    heads = []
                now = self._clock()
                for partner_id, due in heads:
                    running = self._drains.get(partner_id)
                    if running is not None and not running.done():
                        continue
                    wait = (due - now).total_seconds()
                    if wait <= 0:
                        self._drains[partner_id] = asyncio.create_task(
                            self._drain(partner_id), name=f"ocpi-push-{partner_id}"
                        )
                    else:
                        soonest = min(soonest, wait)
                await _wait(self._wake_sender, soonest)
        finally:
            for task in self._drains.values():
                task.cancel()

    async def _drain(self, partner_id: str) -> None:
        """Send the partner's due pushes in order until one must wait."""
        try:
            while True:
                push = await self._database.read(lambda s: partners.next_push(s, partner_id))
                if push is None or push.next_attempt_at is None:
                    return
                if push.next_attempt_at > self._clock():
                    return
                if not await self._deliver(partner_id, push):
                    return
        except StoreError as exc:
            log.warning("ocpi_sender_paused", partner_id=partner_id, error=str(exc))
        except Exception:
            log.exception("ocpi_sender_failed", partner_id=partner_id)
        finally:
            self._wake_sender.set()

    async def _deliver(self, partner_id: str, push: OcpiPush) -> bool:
        """Send one push; True when the next may follow (sent, or refused for good)."""
        assert push.id is not None
        partner = await self._database.read(lambda s: partners.get_partner(s, partner_id))
        if partner is None or partner.outgoing_token is None:
            return False
        kind = PushKind(push.kind)
        try:
            after = await self._send(partner, push)
        except (PartnerUnreachable, PartnerRefused) as exc:
            if isinstance(exc, PartnerRefused) and not _worth_retrying(exc):
                await self._give_up(push, str(exc))
                return True
            attempts = push.attempts + 1
            delay = retry_delay(attempts, ceiling=self._retry_ceiling)
            delay *= 0.75 + self._rng.random() / 2
            await self._database.writer.submit(
                partial(
                    partners.postpone_push,
                    push_id=push.id,
                    attempts=attempts,
                    at=self._clock() + timedelta(seconds=delay),
                    error=str(exc),
                )
            )
            log.warning(
                "ocpi_push_postponed",
                partner_id=partner_id,
                kind=kind.value,
                key=push.object_key,
                attempts=attempts,
                retry_in=round(delay, 1),
                error=str(exc),
            )
            return False
        except UnsafeTarget as exc:
            await self._give_up(push, str(exc))
            return True

        push_id = push.id

        async def done(session: AsyncSession) -> None:
            await partners.delete_push(session, push_id=push_id)
            if after is not None:
                await after(session)

        await self._database.writer.submit(done)
        log.info("ocpi_pushed", partner_id=partner_id, kind=kind.value, key=push.object_key)
        return True

    async def _give_up(self, push: OcpiPush, error: str) -> None:
        assert push.id is not None
        await self._database.writer.submit(
            partial(partners.give_up_push, push_id=push.id, error=error, now=self._clock())
        )
        log.error(
            "ocpi_push_refused",
            partner_id=push.partner_id,
            kind=push.kind,
            key=push.object_key,
            error=error,
        )

    async def _send(self, partner: OcpiPartner, push: OcpiPush) -> AfterSent | None:
        kind = PushKind(push.kind)
        body = push.body or {}
        if kind is PushKind.LOCATION_PUT:
            return await self._put_location(partner, push.object_key.split(":", 1)[1])
        if kind is PushKind.EVSE_PATCH:
            return await self._patch_evse(partner, body)
        if kind in (PushKind.SESSION_PUT, PushKind.SESSION_PATCH):
            await self._push_session(partner, kind, body)
            return None
        if kind is PushKind.CDR_POST:
            url = self._endpoint(partner, ModuleID.CDRS)
            if url is not None:
                await self._call(partner, "POST", url, body)
            return None
        assert kind is PushKind.COMMAND_RESULT
        assert push.url is not None
        await self._call(partner, "POST", push.url, body)
        return None

    async def _put_location(self, partner: OcpiPartner, location_id: str) -> AfterSent | None:
        """PUT the partner's view of a location, or withdraw it (core.roaming)."""
        url = self._endpoint(partner, ModuleID.LOCATIONS)
        if url is None:
            return None
        now = self._clock()

        async def load(
            session: AsyncSession,
        ) -> tuple[LocationState | None, OcpiPartnerLocation | None, Selection]:
            state = await self._views.load(session, location_id)
            kept = await partners.partner_locations(session, partner.id)
            return state, kept.get(location_id), partners.selection_of(partner, kept)

        state, row, selection = await self._database.read(load)
        sent = None if row is None else row.sent
        view = None if state is None else view_for(state, selection=selection, sent=sent, now=now)
        if view is None:
            if sent is None:
                return None
            base = sent if state is None else state.location
            body = validated(withdrawn_location(base, sent=sent, now=format_utc(now)))
        else:
            body = view
        await self._call(partner, "PUT", _join(url, *self._party, location_id), body)
        keep = view

        async def remember(session: AsyncSession) -> None:
            await partners.record_sent(
                session, partner_id=partner.id, location_id=location_id, sent=keep, now=now
            )

        return remember

    async def _patch_evse(self, partner: OcpiPartner, body: dict[str, Any]) -> AfterSent | None:
        """PATCH an EVSE's status (mod_locations §PATCH, "a simple status update"); the
        whole location is PUT instead when the partner does not hold that EVSE yet."""
        url = self._endpoint(partner, ModuleID.LOCATIONS)
        if url is None:
            return None
        location_id, uid = body["location_id"], body["evse_uid"]
        row = await self._database.read(
            lambda s: partners.partner_location(s, partner_id=partner.id, location_id=location_id)
        )
        if row is None or uid not in evse_uids(row.sent):
            return await self._put_location(partner, location_id)
        patch = {"status": body["status"], "last_updated": body["last_updated"]}
        try:
            await self._call(partner, "PATCH", _join(url, *self._party, location_id, uid), patch)
        except PartnerRefused as exc:
            if not falls_back_to_put(
                PushKind.EVSE_PATCH, http_status=exc.http_status, ocpi_status=exc.ocpi_status
            ):
                raise
            return await self._put_location(partner, location_id)
        return None

    async def _push_session(
        self, partner: OcpiPartner, kind: PushKind, body: dict[str, Any]
    ) -> None:
        url = self._endpoint(partner, ModuleID.SESSIONS)
        if url is None:
            return
        target = _join(url, *self._party, body["id"])
        if kind is PushKind.SESSION_PUT:
            await self._call(partner, "PUT", target, body)
            return
        try:
            await self._call(partner, "PATCH", target, session_patch(body))
        except PartnerRefused as exc:
            if not falls_back_to_put(
                kind, http_status=exc.http_status, ocpi_status=exc.ocpi_status
            ):
                raise
            await self._call(partner, "PUT", target, body)

    async def _call(self, partner: OcpiPartner, method: str, url: str, body: Any) -> None:
        assert partner.outgoing_token is not None
        await self._client.call(
            method,
            url,
            token=partner.outgoing_token,
            unencoded=partner.unencoded_token,
            body=body,
            to_party=(partner.country_code, partner.party_id),
        )

    @staticmethod
    def _endpoint(partner: OcpiPartner, module: ModuleID) -> str | None:
        return endpoint_url(partner.endpoints, module, InterfaceRole.RECEIVER)

    # -- the resync -------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        every = True
        while True:
            changed, self._changed = self._changed, set()
            self._wake_resync.clear()
            try:
                await self._database.writer.submit(
                    partial(self._resync_job, only=None if every else changed)
                )
                self._wake_sender.set()
            except StoreError as exc:
                log.warning("ocpi_resync_paused", error=str(exc))
            except Exception:
                log.exception("ocpi_resync_failed")
            every = not await _wait(self._wake_resync, self._resync_interval)

    async def _resync_job(self, session: AsyncSession, *, only: set[str] | None) -> None:
        """Queue a location PUT wherever a partner's copy differs from what it should hold:
        a location to add or withdraw, an EVSE to add or mark REMOVED."""
        now = self._clock()
        registered = [
            p
            for p in await partners.registered_partners(session)
            if (only is None or p.id in only) and self._endpoint(p, ModuleID.LOCATIONS)
        ]
        self._has_partners = None
        if not registered:
            return
        states = await self._views.all(session)
        for partner in registered:
            kept = await partners.partner_locations(session, partner.id)
            selection = partners.selection_of(partner, kept)
            for location_id in _out_of_line(states, kept, selection, now):
                await partners.enqueue(
                    session,
                    partner_id=partner.id,
                    key=f"location:{location_id}",
                    kind=PushKind.LOCATION_PUT,
                    now=now,
                )


def _out_of_line(
    states: list[LocationState],
    kept: dict[str, OcpiPartnerLocation],
    selection: Selection,
    now: datetime,
) -> list[str]:
    """The locations whose copy at the partner is not what it should be."""
    found = []
    known = set()
    for state in states:
        known.add(state.id)
        row = kept.get(state.id)
        sent = None if row is None else row.sent
        try:
            view = view_for(state, selection=selection, sent=None, now=now)
        except ValidationError as exc:
            log.error("ocpi_location_invalid", location_id=state.id, error=str(exc)[:300])
            continue
        if view is None:
            if sent is not None:
                found.append(state.id)
        elif sent is None or evse_uids(sent) != evse_uids(view):
            found.append(state.id)
    # Locations deleted from csms that a partner still holds: withdrawn.
    found.extend(
        location_id
        for location_id, row in kept.items()
        if location_id not in known and row.sent is not None
    )
    return found


def _worth_retrying(exc: PartnerRefused) -> bool:
    """A refusal that may pass later: the partner's auth or server trouble, rate limits.

    Anything else (a 4xx, an OCPI 2xxx) is about the message itself: sending it again
    cannot help, so it is set aside for the operator (docs/ocpi.md, "Pushes").
    """
    if exc.http_status in (401, 403, 408, 425, 429):
        return True
    return exc.ocpi_status is not None and 3000 <= exc.ocpi_status <= 3999


def _join(base: str, *parts: str) -> str:
    return base.rstrip("/") + "/" + "/".join(quote(part, safe="*") for part in parts)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for the event at most `seconds`; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
