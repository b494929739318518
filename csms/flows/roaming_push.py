"""Pushes to roaming partners, fed from the transactional outbox (OCPI 2.2.1, CPO as Sender).

Three loops:

- the **feed** reads committed outbox events (`location.updated`, `evse.status`,
  `session.*`, `cdr.created`, `tariff.updated`) past its saved position and turns each
  into pushes for the partners concerned (csms.flows.roaming_feed), in one transaction
  with the new position, so an event is turned into pushes exactly once, and a partner's
  outage does not hold the outbox back;
- the **sender** sends each partner's pushes strictly in order, retrying a partner that
  is down with backoff (the pushes wait in the database, across restarts too); a newer
  push of the same Location, EVSE status or Session replaces an unsent one, so a partner
  back from an outage gets the latest state, and every CDR;
- the **resync** checks, on every change of a partner and every `ocpi.resync_interval`,
  that each partner holds exactly its locations, EVSEs and tariffs, and queues what
  differs.

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
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

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
    retry_delay,
    session_patch,
    withdrawn_location,
)
from csms.core.roaming_hub import PartyRef, push_recipient
from csms.errors import PartnerRefused, PartnerUnreachable, StoreError, UnsafeTarget
from csms.flows.partners import PartnerClient
from csms.flows.roaming_feed import FEED_TYPES, FeedRouter, PartnerPlan
from csms.flows.roaming_locations import LocationState, PartnerLocations, validated, view_for
from csms.flows.roaming_tariffs import (
    queue_tariff_resync,
    tariff_signature,
    validated_tariff,
)
from csms.store import partners, roaming_catalog, tariffs
from csms.store.db import Database
from csms.store.tables import (
    OcpiPartner,
    OcpiPartnerLocation,
    OcpiPush,
    TariffRow,
)

log = structlog.get_logger("csms.ocpi")

FEED_BATCH = 500
IDLE = 5.0

# A job run after a push went through, in the transaction that removes it from the queue.
AfterSent = Callable[[AsyncSession], Awaitable[None]]


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
        self._everyone = False
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

    def everyone_changed(self) -> None:
        """What every partner should hold may have changed (a tariff assignment moved the
        connectors' tariff_ids): resync them all now."""
        self._everyone = True
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
            plans[partner.id] = PartnerPlan(
                partner=partner, selection=partners.selection_of(partner, kept), rows=kept
            )
        router = FeedRouter(session=session, plans=plans, now=now)
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
        if kind is PushKind.TARIFF_PUT:
            return await self._put_tariff(partner, push.object_key.split(":", 1)[1])
        to = _addressee(push)
        if kind in (PushKind.SESSION_PUT, PushKind.SESSION_PATCH):
            await self._push_session(partner, kind, body, to=to)
            return None
        if kind is PushKind.CDR_POST:
            url = self._endpoint(partner, ModuleID.CDRS)
            if url is not None:
                await self._call(partner, "POST", url, body, to=to)
            return None
        assert kind is PushKind.COMMAND_RESULT
        assert push.url is not None
        await self._call(partner, "POST", push.url, body, to=to)
        return None

    async def _put_tariff(self, partner: OcpiPartner, tariff_id: str) -> AfterSent | None:
        """PUT the current Tariff, or DELETE one csms no longer has that the partner holds
        (mod_tariffs §Receiver Interface); what it holds then is recorded."""
        url = self._endpoint(partner, ModuleID.TARIFFS)
        if url is None:
            return None

        async def load(session: AsyncSession) -> tuple[TariffRow | None, bool]:
            row = await tariffs.get_tariff(session, tariff_id)
            held = await roaming_catalog.held_tariffs(session, partner.id)
            return row, tariff_id in held

        row, held = await self._database.read(load)
        target = _join(url, *self._party, tariff_id)
        if row is None:
            if not held:
                return None
            await self._call(partner, "DELETE", target, None)
            sent_at = None
        else:
            await self._call(partner, "PUT", target, validated_tariff(row.data))
            sent_at = row.last_updated

        async def remember(session: AsyncSession) -> None:
            await roaming_catalog.record_tariff_sent(
                session, partner_id=partner.id, tariff_id=tariff_id, last_updated=sent_at
            )

        return remember

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
        self, partner: OcpiPartner, kind: PushKind, body: dict[str, Any], *, to: PartyRef | None
    ) -> None:
        url = self._endpoint(partner, ModuleID.SESSIONS)
        if url is None:
            return
        target = _join(url, *self._party, body["id"])
        if kind is PushKind.SESSION_PUT:
            await self._call(partner, "PUT", target, body, to=to)
            return
        try:
            await self._call(partner, "PATCH", target, session_patch(body), to=to)
        except PartnerRefused as exc:
            if not falls_back_to_put(
                kind, http_status=exc.http_status, ocpi_status=exc.ocpi_status
            ):
                raise
            await self._call(partner, "PUT", target, body, to=to)

    async def _call(
        self, partner: OcpiPartner, method: str, url: str, body: Any, *, to: PartyRef | None = None
    ) -> None:
        """One call to the partner, addressed (OCPI-to-*) to `to` when it relays for that
        party (a hub, core.roaming_hub.push_recipient), else to the partner itself."""
        assert partner.outgoing_token is not None
        recipient = push_recipient(
            partner=PartyRef.of(partner.country_code, partner.party_id), owner=to
        )
        await self._client.call(
            method,
            url,
            token=partner.outgoing_token,
            unencoded=partner.unencoded_token,
            body=body,
            to_party=(recipient.country_code, recipient.party_id),
        )

    @staticmethod
    def _endpoint(partner: OcpiPartner, module: ModuleID) -> str | None:
        return endpoint_url(partner.endpoints, module, InterfaceRole.RECEIVER)

    # -- the resync -------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        every = True
        while True:
            changed, self._changed = self._changed, set()
            every, self._everyone = every or self._everyone, False
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
        candidates = [
            p for p in await partners.registered_partners(session) if only is None or p.id in only
        ]
        self._has_partners = None
        for partner in candidates:
            if self._endpoint(partner, ModuleID.TARIFFS):
                await queue_tariff_resync(session, partner_id=partner.id, now=now)
        registered = [p for p in candidates if self._endpoint(p, ModuleID.LOCATIONS)]
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
        elif tariff_signature(sent) != tariff_signature(view):
            # An assignment changed which tariff a connector names (docs/ocpi.md, "Tariffs").
            found.append(state.id)
    # Locations deleted from csms that a partner still holds: withdrawn.
    found.extend(
        location_id
        for location_id, row in kept.items()
        if location_id not in known and row.sent is not None
    )
    return found


def _addressee(push: OcpiPush) -> PartyRef | None:
    if push.to_country_code is None or push.to_party_id is None:
        return None
    return PartyRef.of(push.to_country_code, push.to_party_id)


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
