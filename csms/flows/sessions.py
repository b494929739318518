"""Charging sessions: authorization, start, meter values and stop, each with its events."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import IdTagInfo
from csms.core.meter import Sample, latest_register
from csms.core.ocpi import CdrLocationFacts
from csms.core.session import Party, SessionFacts
from csms.core.transactions import StartKey, StopRequest, TransactionFlag, cdr_due
from csms.events import build
from csms.events.envelope import EventType
from csms.flows.reservations import reservation_events
from csms.store import chargers, outbox, registry, transactions
from csms.store.db import Database
from csms.store.tables import Location, Transaction

# Open transactions of one connection, by transactionId (session.updated without a read).
OpenSessions = MutableMapping[int, SessionFacts]


def session_facts(
    row: Transaction, *, party: Party, location_id: str | None, samples: Sequence[Sample] = ()
) -> SessionFacts:
    """What an OCPI Session or CDR needs, from a transaction row."""
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
        meter_stop_wh=row.meter_stop,
        latest_register_wh=row.last_register_wh,
        samples=tuple(samples),
        invalid=row.start_id_tag_status not in (None, "Accepted"),
    )


class RoamingAuthority(Protocol):
    """Roaming partners' tokens (csms.flows.roaming_tokens): an IdTagInfo for an idTag that
    is a partner's token, None for any other."""

    async def authorize(
        self, *, id_tag: str, charge_point_id: str, now: datetime, starting: bool = False
    ) -> IdTagInfo | None: ...


class SessionFlows:
    """Authorize, StartTransaction, MeterValues and StopTransaction, and the force stop."""

    def __init__(self, *, database: Database, party: Party) -> None:
        self._database = database
        self._writer = database.writer
        self.party = party
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
                build.session(EventType.SESSION_STARTED, facts, at=key.timestamp),
            ]
            await outbox.add_events(session, events, now=now)
        return outcome, (facts if row.stop_timestamp is None else None)

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
            await self._stopped_events(
                session, transaction_id=outcome.stopped, location_id=location_id, now=now
            )
        return outcome.id_tag_info

    async def _stopped_events(
        self, session: AsyncSession, *, transaction_id: int, location_id: str | None, now: datetime
    ) -> None:
        row = await session.get(Transaction, transaction_id, populate_existing=True)
        assert row is not None
        if row.start_timestamp is None or row.stop_timestamp is None:
            return
        stored = await transactions.transaction_samples(session, transaction_id)
        facts = session_facts(
            row, party=self.party, location_id=location_id, samples=[_sample(m) for m in stored]
        )
        events = [build.session(EventType.SESSION_STOPPED, facts, at=row.stop_timestamp)]
        due = cdr_due(
            started_at=row.start_timestamp,
            stopped_at=row.stop_timestamp,
            meter_stop=row.meter_stop,
            flags=row.flags,
        )
        if due and await transactions.claim_cdr(session, transaction_id=transaction_id, now=now):
            location = await self._cdr_location(session, row)
            events.append(
                build.cdr_created(
                    facts, party=self.party, location=location, at=now, remark=row.stop_reason
                )
            )
        await outbox.add_events(session, events, now=now)

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
                events.append(build.session_updated(updated, at=register[0]))
        await self._writer.submit_bulk(outbox.with_events(write, events, now=now))

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
        """End a transaction in our data now (the operator's force stop); the row after it."""

        async def job(session: AsyncSession) -> Transaction | None:
            await transactions.force_stop(session, transaction_id=transaction_id, now=now)
            return await transactions.get_transaction(session, transaction_id)

        row: Transaction | None = await self._writer.submit(job)
        return row


def _sample(row: Any) -> Sample:
    return Sample(
        timestamp=row.timestamp,
        value=row.value,
        measurand=row.measurand,
        unit=row.unit,
        context=row.context,
        location=row.location,
        phase=row.phase,
        format=row.format,
    )
