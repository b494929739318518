"""Charging sessions: authorization, start, meter values and stop, each with its events."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import IdTagInfo
from csms.core.events import Event
from csms.core.meter import Sample, latest_register
from csms.core.session import Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession
from csms.core.transactions import (
    StartKey,
    StopRequest,
    TransactionFlag,
)
from csms.events import build
from csms.events.envelope import EventType
from csms.flows.reservations import reservation_events
from csms.flows.session_end import SessionEnd, session_facts
from csms.flows.session_stops import SessionStops, StopItem
from csms.flows.tariffs import Assignments, SessionPricing
from csms.flows.wallet import WalletFlows
from csms.store import chargers, outbox, registry, transactions
from csms.store import samples as samples_store
from csms.store import transactions_bulk as bulk
from csms.store.db import Database, GroupJob
from csms.store.rates import Circuits, circuits_from
from csms.store.tables import Transaction

# Open transactions of one connection, by transactionId (session.updated without a read);
# None: a transactionId its MeterValues named that is not an open transaction of its own.
OpenSessions = MutableMapping[int, SessionFacts | None]
MAX_CACHED_PER_CONNECTION = 1024


@dataclass(frozen=True)
class _Authorize:
    """An Authorize request as the writer's group of them takes it."""

    charge_point_id: str
    id_tag: str
    now: datetime
    # A roaming partner's decision on the tag; None: the id-tags registry decides.
    decided: IdTagInfo | None


@dataclass(frozen=True)
class _Start:
    """A StartTransaction as the writer's group of Starts takes it."""

    key: StartKey
    reservation_id: int | None
    flags: tuple[TransactionFlag, ...]
    location_id: str | None
    now: datetime
    # A roaming partner's decision on the tag; None: the id-tags registry decides.
    decided: IdTagInfo | None


# A Start's outcome and, while its transaction is open, the session's facts.
_Started = tuple[transactions.StartOutcome, SessionFacts | None]


def _place(start: _Start) -> tuple[str, int]:
    return start.key.charge_point_id, start.key.connector_id


def _first_per_connector(starts: Sequence[_Start]) -> list[_Start]:
    """The first Start of each (charger, connector) of a group (the others go one by one)."""
    seen: set[tuple[str, int]] = set()
    firsts = []
    for start in starts:
        if _place(start) not in seen:
            seen.add(_place(start))
            firsts.append(start)
    return firsts


class RoamingAuthority(Protocol):
    """Roaming partners' tokens (csms.flows.roaming_tokens): an IdTagInfo for an idTag that
    is a partner's token, None for any other."""

    async def authorize(
        self, *, id_tag: str, charge_point_id: str, now: datetime, starting: bool = False
    ) -> IdTagInfo | None: ...


class SessionFlows:
    """Authorize, StartTransaction, MeterValues and StopTransaction, and the force stop."""

    def __init__(
        self,
        *,
        database: Database,
        party: Party,
        pricing: SessionPricing | None = None,
        wallet: WalletFlows | None = None,
    ) -> None:
        self._database = database
        self._writer = database.writer
        self.party = party
        # Transactions force-stopped here whose charger has not sent its Stop yet: a cached
        # open session of theirs must not publish session.updated any more.
        self._forced: set[int] = set()
        # Tariffs and wallets (docs/tariffs.md); None prices nothing.
        self.pricing = pricing
        self.wallet = wallet
        self._end = SessionEnd(party=party, pricing=pricing, wallet=wallet)
        self._stops = SessionStops(end=self._end, pricing=pricing)
        # Set when OCPI roaming is on: partners' tokens are decided there (docs/ocpi.md).
        self.roaming: RoamingAuthority | None = None

    async def _roaming_info(
        self, *, charge_point_id: str, id_tag: str, now: datetime, starting: bool
    ) -> IdTagInfo | None:
        if self.roaming is None:
            return None
        return await self.roaming.authorize(
            id_tag=id_tag, charge_point_id=charge_point_id, now=now, starting=starting
        )

    async def authorize(self, *, charge_point_id: str, id_tag: str, now: datetime) -> IdTagInfo:
        """The tag's IdTagInfo, and `authorization` on MQTT."""
        decided = await self._roaming_info(
            charge_point_id=charge_point_id, id_tag=id_tag, now=now, starting=False
        )
        request = _Authorize(
            charge_point_id=charge_point_id, id_tag=id_tag, now=now, decided=decided
        )
        info: IdTagInfo = await self._writer.submit_group(GroupJob(self._authorize_group, request))
        return info

    async def _authorize_group(
        self, session: AsyncSession, requests: list[_Authorize]
    ) -> list[IdTagInfo]:
        """A batch's Authorize requests: their tags read with one query, their events
        written with one statement."""
        # Held to the end: the wallet's reads of these tags then cost no query.
        tags = await bulk.id_tags(session, {r.id_tag for r in requests if r.decided is None})
        infos: list[IdTagInfo] = []
        events: list[Event] = []
        for r in requests:
            info = r.decided or registry.decide(tags.get(r.id_tag), now=r.now)
            if self.wallet is not None:
                info = await self.wallet.check_prepaid(
                    session,
                    info=info,
                    id_tag=r.id_tag,
                    charge_point_id=r.charge_point_id,
                    connector_id=0,
                    location_id=None,
                    find_location=True,
                    at=r.now,
                )
            infos.append(info)
            events.append(
                build.authorization(
                    r.charge_point_id,
                    at=r.now,
                    id_tag=r.id_tag,
                    status=info.status.value,
                    source="Authorize",
                )
            )
        await outbox.add_events(session, events, now=max(r.now for r in requests))
        return infos

    async def start(
        self,
        *,
        key: StartKey,
        reservation_id: int | None,
        flags: Sequence[TransactionFlag],
        location_id: str | None,
        open_sessions: OpenSessions,
        now: datetime,
    ) -> transactions.StartOutcome:
        """Record a StartTransaction once, however often it is sent (OCPP 1.6 §4.8)."""
        decided = await self._roaming_info(
            charge_point_id=key.charge_point_id, id_tag=key.id_tag, now=now, starting=True
        )
        start = _Start(
            key=key,
            reservation_id=reservation_id,
            flags=tuple(flags),
            location_id=location_id,
            now=now,
            decided=decided,
        )
        outcome, facts = await self._writer.submit_group(GroupJob(self._start_group, start))
        if facts is not None:
            open_sessions[outcome.transaction_id] = facts
        for ended in outcome.ended:
            open_sessions.pop(ended, None)
        return outcome  # type: ignore[no-any-return]

    async def _start_group(self, session: AsyncSession, starts: list[_Start]) -> list[_Started]:
        """A batch's Starts together: their tags, inserts and checks are one query each for
        the group (csms.store.transactions_bulk); a repeated Start, and the second Start of
        one connector in a batch, go one by one (`_start`)."""
        firsts = _first_per_connector(starts)
        tags = await bulk.id_tags(session, {s.key.id_tag for s in firsts if s.decided is None})
        inserts = {
            id(s): bulk.StartInsert(
                key=s.key,
                reservation_id=s.reservation_id,
                flags=s.flags,
                info=s.decided or registry.decide(tags.get(s.key.id_tag), now=s.now),
                now=s.now,
            )
            for s in firsts
        }
        rows = await bulk.insert_starts(session, list(inserts.values()))
        kept = [row.id for row in rows.values() if row.id is not None]
        checks = await bulk.start_checks(
            session, charge_point_ids={s.key.charge_point_id for s in firsts}, keep=kept
        )
        known, circuits = None, None
        if self.pricing is not None:
            places = [(*_place(s), s.location_id) for s in firsts]
            known = await self.pricing.assignments(session, places)
            circuits = circuits_from([_place(s) for s in firsts], checks.members)
        done: dict[int, _Started] = {}
        events: list[Event] = []
        for s in firsts:
            row = rows.get(_place(s))
            if row is None:
                continue  # a repeat: `_start` finds its transaction
            outcome = await bulk.complete_start(
                session,
                start=inserts[id(s)],
                row=row,
                open_elsewhere=_place(s) in checks.open_pairs,
                reserved=s.key.charge_point_id in checks.reserved,
            )
            outcome, facts, started = await self._started(
                session, s, outcome, row, known=known, circuits=circuits
            )
            done[id(s)] = (outcome, facts)
            events += started
        await outbox.add_events(session, events, now=max(s.now for s in starts))
        for s in starts:
            if id(s) not in done:
                done[id(s)] = await self._start(session, s)
        return [done[id(s)] for s in starts]

    async def _start(self, session: AsyncSession, start: _Start) -> _Started:
        """One Start on its own (`transactions.start_transaction`)."""
        outcome = await transactions.start_transaction(
            session,
            key=start.key,
            reservation_id=start.reservation_id,
            flags=start.flags,
            now=start.now,
            id_tag_info=start.decided,
        )
        row = await session.get(Transaction, outcome.transaction_id)
        assert row is not None
        outcome, facts, events = await self._started(
            session, start, outcome, row, known=None, circuits=None
        )
        await outbox.add_events(session, events, now=start.now)
        return outcome, facts

    async def _started(
        self,
        session: AsyncSession,
        start: _Start,
        outcome: transactions.StartOutcome,
        row: Transaction,
        *,
        known: Assignments | None,
        circuits: Circuits | None,
    ) -> tuple[transactions.StartOutcome, SessionFacts | None, list[Event]]:
        """A recorded Start's pricing, open session and events (none for a repeat)."""
        key, location_id, now = start.key, start.location_id, start.now
        if outcome.created:
            outcome = await self._priced_start(
                session, outcome, row, location_id, now=now, known=known, circuits=circuits
            )
        facts = session_facts(row, party=self.party, location_id=location_id)
        events: list[Event] = []
        if outcome.created:
            events += reservation_events(outcome.reservations, at=key.timestamp)
            events.append(
                build.authorization(
                    key.charge_point_id,
                    at=key.timestamp,
                    id_tag=key.id_tag,
                    status=outcome.id_tag_info.status.value,
                    source="StartTransaction",
                )
            )
            # The transactions this Start ended end for consumers too, before it starts.
            for ended in outcome.ended:
                events += await self._end.ended_alone(
                    session, transaction_id=ended, location_id=location_id, now=now
                )
            events.append(build.session(EventType.SESSION_STARTED, facts, at=key.timestamp))
        return outcome, (facts if row.stop_timestamp is None else None), events

    async def _priced_start(
        self,
        session: AsyncSession,
        outcome: transactions.StartOutcome,
        row: Transaction,
        location_id: str | None,
        *,
        now: datetime,
        known: Assignments | None = None,
        circuits: Circuits | None = None,
    ) -> transactions.StartOutcome:
        """Prepaid drivers who cannot pay are Blocked; the others get their tariff resolved."""
        if self.wallet is not None and row.id_tag is not None and row.start_timestamp is not None:
            info = await self.wallet.check_prepaid(
                session,
                info=outcome.id_tag_info,
                id_tag=row.id_tag,
                charge_point_id=row.charge_point_id,
                connector_id=row.connector_id,
                location_id=location_id,
                at=row.start_timestamp,
            )
            if info.status is not outcome.id_tag_info.status:
                row.start_id_tag_status = info.status.value
                await session.flush()
                return replace(outcome, id_tag_info=info)
        if self.pricing is not None and outcome.id_tag_info.status.value == "Accepted":
            await self.pricing.start(
                session, row=row, location_id=location_id, now=now, known=known, circuits=circuits
            )
        return outcome

    async def stop(
        self,
        *,
        request: StopRequest,
        location_id: str | None,
        open_sessions: OpenSessions,
        now: datetime,
    ) -> IdTagInfo | None:
        """Record one stop per transaction, with `session.stopped` and its one CDR."""
        stop = StopItem(request=request, location_id=location_id, now=now)
        job = GroupJob(self._stops.run_group, stop)
        info: IdTagInfo | None = await self._writer.submit_group(job)
        open_sessions.pop(request.transaction_id, None)
        self._forced.discard(request.transaction_id)
        return info

    async def record_meter_values(
        self,
        *,
        charge_point_id: str,
        connector_id: int,
        transaction_id: int | None,
        samples: Sequence[Sample],
        location_id: str | None,
        open_sessions: OpenSessions,
        now: datetime,
    ) -> None:
        """Store the samples; `meter.values`, and `session.updated` when the register moved."""
        write = samples_store.store_samples(
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            claimed_transaction_id=transaction_id,
            samples=samples,
            now=now,
        )
        at = samples[-1].timestamp if samples else now
        events = [
            build.meter_values(
                charge_point_id,
                connector_id=connector_id,
                transaction_id=transaction_id,
                samples=samples,
                at=at,
            )
        ]
        register = latest_register(samples)
        if register is not None:
            active = await self._open_session(
                charge_point_id, transaction_id, location_id=location_id, cache=open_sessions
            )
            if active is not None:
                updated = replace(active, latest_register_wh=register[1])
                priced = await self._running_cost(updated, samples, at=register[0])
                events.append(build.session_updated(updated, at=register[0], priced=priced))
        await self._writer.submit_bulk(outbox.with_events(write, events, now=now))

    async def _running_cost(
        self, facts: SessionFacts, samples: Sequence[Sample], *, at: datetime
    ) -> PricedSession | None:
        """The cost so far; a prepaid session whose cost reached the balance is stopped."""
        if self.pricing is None:
            return None
        found = await self.pricing.running_cost(facts, samples, at=at)
        if found is None:
            return None
        priced, running = found
        if running.prepaid and running.user_id is not None and self.wallet is not None:
            await self.wallet.check_running(facts, priced, user_id=running.user_id, at=at)
        return priced

    async def _open_session(
        self,
        charge_point_id: str,
        transaction_id: int | None,
        *,
        location_id: str | None,
        cache: OpenSessions,
    ) -> SessionFacts | None:
        """The open transaction a MeterValues names: cached, or (after a reconnect) read."""
        if transaction_id is None or transaction_id <= 0:
            return None
        if transaction_id in self._forced:
            cache.pop(transaction_id, None)
            return None
        if transaction_id in cache:
            return cache[transaction_id]
        row = await self._database.read(
            lambda session: transactions.get_transaction(session, transaction_id)
        )
        if (
            row is None
            or row.charge_point_id != charge_point_id
            or row.stop_timestamp is not None
            or row.start_timestamp is None
        ):
            # Unknown, another charger's, or stopped: it stays so (ids are never reused and
            # a stop is never undone), so the charger's next MeterValues naming it costs no
            # read. A Start that creates it replaces the entry. Bounded per connection.
            if len(cache) < MAX_CACHED_PER_CONNECTION:
                cache[transaction_id] = None
            return None
        facts = session_facts(row, party=self.party, location_id=location_id)
        cache[transaction_id] = facts
        return facts

    async def force_stop(self, *, transaction_id: int, now: datetime) -> Transaction | None:
        """End a transaction in our data now (the operator's force stop); the row after it.

        Consumers learn it at once: `session.stopped` (reason `forced`) and an estimated
        `cdr.created`; the charger's own Stop, if it comes, corrects them.
        """

        async def job(session: AsyncSession) -> tuple[Transaction | None, bool]:
            ended = await transactions.force_stop(session, transaction_id=transaction_id, now=now)
            if ended:
                row = await transactions.get_transaction(session, transaction_id)
                assert row is not None
                charger = await chargers.get_charge_point(session, row.charge_point_id)
                events = await self._end.ended_alone(
                    session,
                    transaction_id=transaction_id,
                    location_id=charger.location_id if charger is not None else None,
                    now=now,
                )
                await outbox.add_events(session, events, now=now)
            return await transactions.get_transaction(session, transaction_id), ended

        row, ended = await self._writer.submit(job)
        if ended:
            self._forced.add(transaction_id)
        return row
