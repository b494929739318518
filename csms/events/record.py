"""State changes together with the events they cause, committed in one transaction.

Each function here is a writer job (or builds a bulk write): the change and its outbox
rows commit together, so there is no event without its change and no change without its
event.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core import ocpi
from csms.core.authorize import IdTagInfo
from csms.core.events import Event
from csms.core.meter import Sample, latest_register
from csms.core.transactions import StartKey, TransactionFlag
from csms.events import build
from csms.events.build import Party
from csms.events.envelope import EventType
from csms.store import outbox, repo
from csms.store.commands import CommandRecord, expire_reservations, record_command
from csms.store.db import BulkWrite
from csms.store.tables import Location, Reservation, Transaction


def with_events(write: BulkWrite, events: Sequence[Event], *, now: datetime) -> BulkWrite:
    """A bulk write that also puts its events in the outbox."""
    steps = tuple(outbox.event_step(event, now=now) for event in events)
    return BulkWrite(steps=write.steps + steps)


def session_facts(
    row: Transaction, *, party: Party, location_id: str | None, samples: Sequence[Sample] = ()
) -> ocpi.SessionFacts:
    """What an OCPI Session or CDR needs, from a transaction row."""
    assert row.id is not None
    assert row.start_timestamp is not None
    return ocpi.SessionFacts(
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


@dataclass(frozen=True)
class Recorder:
    """Builds the combined jobs for one csms (it knows our OCPI identity)."""

    party: Party

    async def authorize(
        self, session: AsyncSession, *, charge_point_id: str, id_tag: str, now: datetime
    ) -> IdTagInfo:
        info = await repo.authorize_id_tag(session, id_tag=id_tag, now=now)
        event = build.authorization(
            charge_point_id, at=now, id_tag=id_tag, status=info.status.value, source="Authorize"
        )
        await outbox.add_events(session, [event], now=now)
        return info

    async def start(
        self,
        session: AsyncSession,
        *,
        key: StartKey,
        reservation_id: int | None,
        flags: Sequence[TransactionFlag],
        location_id: str | None,
        now: datetime,
    ) -> tuple[repo.StartOutcome, ocpi.SessionFacts | None]:
        outcome = await repo.start_transaction(
            session, key=key, reservation_id=reservation_id, flags=flags, now=now
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
        session: AsyncSession,
        *,
        request: repo.StopRequest,
        location_id: str | None,
        now: datetime,
    ) -> IdTagInfo | None:
        outcome = await repo.stop_transaction(session, request=request, now=now)
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
        stored = await repo.transaction_samples(session, transaction_id)
        facts = session_facts(
            row, party=self.party, location_id=location_id, samples=[_sample(m) for m in stored]
        )
        events = [build.session(EventType.SESSION_STOPPED, facts, at=row.stop_timestamp)]
        if row.meter_stop is not None and row.stop_timestamp >= row.start_timestamp:
            if await repo.claim_cdr(session, transaction_id=transaction_id, now=now):
                location = await self._cdr_location(session, row)
                events.append(
                    build.cdr_created(
                        facts, party=self.party, location=location, at=now, remark=row.stop_reason
                    )
                )
        await outbox.add_events(session, events, now=now)

    async def command(self, session: AsyncSession, *, record: CommandRecord) -> int:
        """Keep a command; `command.completed` when it reached the charger (contract)."""
        command_id, reservations = await record_command(session, record=record)
        events = reservation_events(reservations, at=record.completed_at)
        if record.outcome in ("ok", "callerror", "timeout"):
            error = None
            if record.outcome != "ok":
                error = {
                    "errorCode": record.error_code or "Timeout",
                    "errorDescription": record.error_description or "",
                }
            events.insert(
                0,
                build.command_completed(
                    record.charge_point_id,
                    action=record.action,
                    request=record.request,
                    response=record.response,
                    error=error,
                    at=record.completed_at,
                ),
            )
        await outbox.add_events(session, events, now=record.completed_at)
        return command_id

    async def expire_reservations(
        self, session: AsyncSession, *, now: datetime
    ) -> list[Reservation]:
        expired = await expire_reservations(session, now=now)
        await outbox.add_events(session, reservation_events(expired, at=now), now=now)
        return expired

    async def offline(
        self,
        session: AsyncSession,
        *,
        now: datetime,
        grace: timedelta,
        long_term: timedelta,
        online: Container[str],
    ) -> int:
        """Apply the offline rules; returns how many chargers moved on a stage.

        Past `grace` offline, a charger's EVSEs are UNKNOWN (contract: "charger offline past
        the grace period"); past `long_term`, its network status is long_term_unavailable.
        """
        moved = 0
        for charger, connectors in await repo.offline_due(
            session, stage=1, offline_since=now - grace
        ):
            if charger.id in online:
                continue
            events = [
                build.evse_status(
                    charger.id,
                    party=self.party,
                    connector_id=c.connector_id,
                    ocpp_status=c.status,
                    error_code=c.error_code,
                    info=c.info,
                    vendor_error_code=c.vendor_error_code,
                    vendor_error_text=None,
                    online=False,
                    at=now,
                )
                for c in connectors
                if c.connector_id >= 1
            ]
            await outbox.add_events(session, events, now=now)
            await repo.set_offline_stage(session, charge_point_id=charger.id, stage=1)
            moved += 1
        for charger, _ in await repo.offline_due(session, stage=2, offline_since=now - long_term):
            if charger.id in online:
                continue
            event = build.network_status(charger.id, at=now, status="long_term_unavailable")
            await outbox.add_events(session, [event], now=now)
            await repo.set_offline_stage(session, charge_point_id=charger.id, stage=2)
            moved += 1
        return moved

    async def _cdr_location(
        self, session: AsyncSession, row: Transaction
    ) -> ocpi.CdrLocationFacts | None:
        charger = await repo.get_charge_point(session, row.charge_point_id)
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

    def meter_values(
        self,
        write: BulkWrite,
        *,
        charge_point_id: str,
        connector_id: int,
        transaction_id: int | None,
        samples: Sequence[Sample],
        active: ocpi.SessionFacts | None,
        now: datetime,
    ) -> BulkWrite:
        """MeterValues: `meter.values`, and `session.updated` when the register moved."""
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
        if active is not None and register is not None:
            updated = _with_register(active, register[1])
            events.append(build.session_updated(updated, at=register[0]))
        return with_events(write, events, now=now)


def reservation_events(rows: Sequence[Reservation], *, at: datetime) -> list[Event]:
    return [
        build.reservation_status(
            row.charge_point_id,
            reservation_id=row.reservation_id,
            connector_id=row.connector_id,
            id_tag=row.id_tag,
            status=row.status,
            at=at,
        )
        for row in rows
    ]


def _with_register(facts: ocpi.SessionFacts, register_wh: float) -> ocpi.SessionFacts:
    from dataclasses import replace

    return replace(facts, latest_register_wh=register_wh)


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
