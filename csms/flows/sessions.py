"""Charging sessions: authorization, start, meter values and stop, each with its events."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import IdTagInfo
from csms.core.events import Event
from csms.core.meter import Sample, latest_register
from csms.core.ocpi import CdrLocationFacts
from csms.core.session import Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession
from csms.core.transactions import (
    CdrStep,
    StartKey,
    StopRequest,
    TransactionFlag,
    cdr_step,
    estimated_meter_stop,
    session_end,
)
from csms.events import build
from csms.events.envelope import EventType
from csms.flows.reservations import reservation_events
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import BALANCE_EXCEEDED, WalletFlows
from csms.store import chargers, outbox, registry, tariffs, transactions
from csms.store.db import Database
from csms.store.tables import Location, Transaction

# Open transactions of one connection, by transactionId (session.updated without a read).
OpenSessions = MutableMapping[int, SessionFacts]


def session_facts(
    row: Transaction, *, party: Party, location_id: str | None, samples: Sequence[Sample] = ()
) -> SessionFacts:
    """What an OCPI Session or CDR needs, from a transaction row.

    A transaction csms ended without the charger's Stop (forced, implicitly ended) has no
    meterStop of its own: it gets the estimate, so its Session and CDR tell the same energy.
    """
    assert row.id is not None
    assert row.start_timestamp is not None
    return SessionFacts(
        transaction_id=row.id,
        charge_point_id=row.charge_point_id,
        connector_id=max(row.connector_id, 1),
        id_tag=row.id_tag or row.stop_id_tag or "UNKNOWN",
        start=row.start_timestamp,
        meter_start_wh=row.meter_start or 0,
        country_code=party.country_code,
        party_id=party.party_id,
        # Until the charger is linked to a location, its identity stands in for one.
        location_id=location_id or row.charge_point_id[:36],
        currency=party.currency,
        stop=row.stop_timestamp,
        meter_stop_wh=_meter_stop(row),
        latest_register_wh=row.last_register_wh,
        samples=tuple(samples),
        invalid=row.start_id_tag_status not in (None, "Accepted"),
    )


def _meter_stop(row: Transaction) -> int | None:
    if row.meter_stop is not None or row.stop_timestamp is None:
        return row.meter_stop
    # Ended by csms, or the charger's meterStop was unreadable (flag unreadable_meter_stop):
    # the last register stands in for it, as for a forced stop.
    return estimated_meter_stop(meter_start=row.meter_start or 0, register_wh=row.last_register_wh)


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
        info: IdTagInfo = await self._writer.submit(
            partial(
                self._authorize,
                charge_point_id=charge_point_id,
                id_tag=id_tag,
                now=now,
                decided=decided,
            )
        )
        return info

    async def _authorize(
        self,
        session: AsyncSession,
        *,
        charge_point_id: str,
        id_tag: str,
        now: datetime,
        decided: IdTagInfo | None = None,
    ) -> IdTagInfo:
        info = decided or await registry.authorize_id_tag(session, id_tag=id_tag, now=now)
        if self.wallet is not None:
            info = await self.wallet.check_prepaid(
                session,
                info=info,
                id_tag=id_tag,
                charge_point_id=charge_point_id,
                connector_id=0,
                location_id=None,
                find_location=True,
                at=now,
            )
        event = build.authorization(
            charge_point_id, at=now, id_tag=id_tag, status=info.status.value, source="Authorize"
        )
        await outbox.add_events(session, [event], now=now)
        return info

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
        outcome, facts = await self._writer.submit(
            partial(
                self._start,
                key=key,
                reservation_id=reservation_id,
                flags=flags,
                location_id=location_id,
                now=now,
                decided=decided,
            )
        )
        if facts is not None:
            open_sessions[outcome.transaction_id] = facts
        for ended in outcome.ended:
            open_sessions.pop(ended, None)
        return outcome

    async def _start(
        self,
        session: AsyncSession,
        *,
        key: StartKey,
        reservation_id: int | None,
        flags: Sequence[TransactionFlag],
        location_id: str | None,
        now: datetime,
        decided: IdTagInfo | None = None,
    ) -> tuple[transactions.StartOutcome, SessionFacts | None]:
        outcome = await transactions.start_transaction(
            session,
            key=key,
            reservation_id=reservation_id,
            flags=flags,
            now=now,
            id_tag_info=decided,
        )
        row = await session.get(Transaction, outcome.transaction_id)
        assert row is not None
        if outcome.created:
            outcome = await self._priced_start(session, outcome, row, location_id, now=now)
        facts = session_facts(row, party=self.party, location_id=location_id)
        if outcome.created:
            events = [
                *reservation_events(outcome.reservations, at=key.timestamp),
                build.authorization(
                    key.charge_point_id,
                    at=key.timestamp,
                    id_tag=key.id_tag,
                    status=outcome.id_tag_info.status.value,
                    source="StartTransaction",
                ),
            ]
            # The transactions this Start ended end for consumers too, before it starts.
            for ended in outcome.ended:
                events += await self._ended_events(
                    session, transaction_id=ended, location_id=location_id, now=now
                )
            events.append(build.session(EventType.SESSION_STARTED, facts, at=key.timestamp))
            await outbox.add_events(session, events, now=now)
        return outcome, (facts if row.stop_timestamp is None else None)

    async def _priced_start(
        self,
        session: AsyncSession,
        outcome: transactions.StartOutcome,
        row: Transaction,
        location_id: str | None,
        *,
        now: datetime,
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
            await self.pricing.start(session, row=row, location_id=location_id, now=now)
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
        info: IdTagInfo | None = await self._writer.submit(
            partial(self._stop, request=request, location_id=location_id, now=now)
        )
        open_sessions.pop(request.transaction_id, None)
        self._forced.discard(request.transaction_id)
        return info

    async def _stop(
        self,
        session: AsyncSession,
        *,
        request: StopRequest,
        location_id: str | None,
        now: datetime,
    ) -> IdTagInfo | None:
        outcome = await transactions.stop_transaction(session, request=request, now=now)
        if outcome.stopped is not None:
            events = await self._ended_events(
                session, transaction_id=outcome.stopped, location_id=location_id, now=now
            )
            await outbox.add_events(session, events, now=now)
        return outcome.id_tag_info

    async def _ended_events(
        self, session: AsyncSession, *, transaction_id: int, location_id: str | None, now: datetime
    ) -> list[Event]:
        """`session.stopped` for a transaction that has just ended, and the CDRs it needs.

        The caller has just ended it in this job, so it holds the row (docs/events.md,
        cdr.created): its one CDR, estimated when csms ended it; and when the charger's own
        Stop follows an estimate, a credit for the estimate and a CDR with the real values
        (OCPI 2.2.1 mod_cdrs §Credit CDRs).
        """
        row = await session.get(Transaction, transaction_id, populate_existing=True)
        assert row is not None
        if row.start_timestamp is None or row.stop_timestamp is None:
            return []
        stored = await transactions.transaction_samples(session, transaction_id)
        facts = session_facts(
            row,
            party=self.party,
            location_id=location_id,
            samples=transactions.samples_of(stored),
        )
        end = session_end(charger_stopped=row.charger_stopped, flags=row.flags)
        # Priced and charged with the charger's values, or with the estimate when csms ended
        # the session itself; a correction credits the estimate (docs/tariffs.md, "Estimated
        # and corrected CDRs").
        settled = None
        if self.pricing is not None and facts.meter_stop_wh is not None:
            settled = await self.pricing.settle(session, row=row, facts=facts, now=now)
        priced = None if settled is None else settled.priced
        events = [
            build.session_stopped(
                facts, at=row.stop_timestamp, end=end, stop_reason=row.stop_reason, priced=priced
            )
        ]
        step = cdr_step(
            started_at=row.start_timestamp,
            stopped_at=row.stop_timestamp,
            charger_stopped=row.charger_stopped,
            flags=row.flags,
        )
        if step is CdrStep.NONE:
            return events
        location = await self._cdr_location(session, row)
        if step is CdrStep.CORRECTION:
            assert row.estimated_cdr is not None
            first = row.estimated_cdr
            events.append(build.cdr_credit(row.charge_point_id, first, at=now))
            replaces: str | None = str(first["cdrId"])
        else:
            replaces = None
        cdr = build.cdr_created(
            facts,
            party=self.party,
            location=location,
            at=now,
            remark=row.stop_reason,
            end=end,
            estimated=not row.charger_stopped,
            replaces=replaces,
            priced=priced,
            parking_s=0 if settled is None else settled.parking_s,
        )
        events.append(cdr)
        estimate = None if row.charger_stopped else cdr.data
        await transactions.record_cdrs(session, row, step=step, estimated_cdr=estimate, now=now)
        if self.wallet is not None and settled is not None and settled.user_id is not None:
            if replaces is not None:
                events += await self.wallet.credit_session(
                    session,
                    user_id=settled.user_id,
                    transaction_id=transaction_id,
                    credited_cdr_id=replaces,
                    credit_cdr_id=f"{replaces}-C",
                    now=now,
                )
            assert priced is not None
            total = priced.costs.total
            events += await self.wallet.charge_session(
                session,
                user_id=settled.user_id,
                transaction_id=transaction_id,
                amount=total.incl_vat if total.incl_vat is not None else total.excl_vat,
                currency=priced.costs.currency,
                now=now,
                cdr_id=str(cdr.data["cdrId"]),
            )
        return events

    async def _cdr_location(
        self, session: AsyncSession, row: Transaction
    ) -> CdrLocationFacts | None:
        charger = await chargers.get_charge_point(session, row.charge_point_id)
        if charger is None or charger.location_id is None:
            return None
        location = await session.get(Location, charger.location_id)
        if location is None:
            return None
        return build.cdr_location(
            location.data,
            party=self.party,
            charge_point_id=row.charge_point_id,
            connector_id=max(row.connector_id, 1),
            connector_spec=charger.connector_spec,
        )

    async def meter_values(
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
        write = transactions.meter_values(
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
            total = priced.costs.total
            cost = total.incl_vat if total.incl_vat is not None else total.excl_vat
            if cost >= await self.pricing.balance(running.user_id):
                await self._stop_for_balance(facts, priced, at=at)
        return priced

    async def _stop_for_balance(
        self, facts: SessionFacts, priced: PricedSession, *, at: datetime
    ) -> None:
        """Once per transaction: `session.updated` says why, and the charger is asked to stop."""

        async def job(session: AsyncSession) -> bool:
            claimed = await tariffs.claim_balance_stop(
                session, transaction_id=facts.transaction_id, reason=BALANCE_EXCEEDED
            )
            if claimed:
                event = build.session_updated(facts, at=at, priced=priced, reason=BALANCE_EXCEEDED)
                await outbox.add_events(session, [event], now=at)
            return claimed

        if await self._writer.submit(job) and self.wallet is not None:
            self.wallet.stops.request(facts.charge_point_id, facts.transaction_id)

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
        facts = cache.get(transaction_id)
        if facts is not None:
            return facts
        row = await self._database.read(
            lambda session: transactions.get_transaction(session, transaction_id)
        )
        if row is None or row.charge_point_id != charge_point_id or row.stop_timestamp is not None:
            return None
        if row.start_timestamp is None:
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
                events = await self._ended_events(
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
