"""A session's end: `session.stopped`, the CDRs it needs and the settlement of its cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.events import Event
from csms.core.meter import Sample
from csms.core.ocpi import CdrLocationFacts
from csms.core.session import Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession
from csms.core.transactions import CdrStep, cdr_step, estimated_meter_stop, session_end
from csms.core.transactions import SessionEnd as EndKind
from csms.events import build
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.store import chargers, samples, tariffs, transactions
from csms.store.tables import ChargePoint, Location, Transaction, TransactionPricing

# What a transaction's row notes of the CDRs its events carry (`transactions.record_cdrs`).
CdrMark = tuple[CdrStep, dict[str, Any] | None]


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


@dataclass(frozen=True)
class EndFacts:
    """A session's end as its events need it, read and settled in the writer's transaction
    (`SessionEnd.settle`): pure data, no row or session, so the events are built from it
    alone (`end_events`), after every statement of the job."""

    facts: SessionFacts
    party: Party
    end: EndKind
    stopped_at: datetime
    stop_reason: str | None
    priced: PricedSession | None
    step: CdrStep
    now: datetime
    location: CdrLocationFacts | None = None
    # The estimated CDR (its event data) a correction credits.
    first_cdr: dict[str, Any] | None = None
    parking_s: int = 0
    # What the session's energy cost to buy (docs/tariffs.md, "Purchase cost and margin").
    purchase_cost: Decimal | None = None
    # The wallet's events (balance charged or credited), already built: they follow the CDR.
    wallet_events: tuple[Event, ...] = ()


def end_events(ending: EndFacts) -> tuple[list[Event], CdrMark | None]:
    """`session.stopped`, the CDR (after a credit for the estimate it corrects) and the
    wallet's events, in that order; and what the transaction's row must note of its CDRs."""
    facts, priced = ending.facts, ending.priced
    events = [
        build.session_stopped(
            facts,
            at=ending.stopped_at,
            end=ending.end,
            stop_reason=ending.stop_reason,
            priced=priced,
        )
    ]
    if ending.step is CdrStep.NONE:
        return events, None
    replaces: str | None = None
    if ending.first_cdr is not None:
        events.append(build.cdr_credit(facts.charge_point_id, ending.first_cdr, at=ending.now))
        replaces = str(ending.first_cdr["cdrId"])
    charger_stopped = ending.end is EndKind.CHARGER
    cdr = build.cdr_created(
        facts,
        party=ending.party,
        location=ending.location,
        at=ending.now,
        remark=ending.stop_reason,
        end=ending.end,
        estimated=not charger_stopped,
        replaces=replaces,
        priced=priced,
        parking_s=ending.parking_s,
        purchase_cost=ending.purchase_cost,
    )
    events.append(cdr)
    events += ending.wallet_events
    return events, (ending.step, None if charger_stopped else cdr.data)


def row_cdr_step(row: Transaction) -> CdrStep:
    """The CDRs the stopped transaction of this row still needs (`cdr_step`)."""
    return cdr_step(
        started_at=row.start_timestamp,
        stopped_at=row.stop_timestamp,
        charger_stopped=row.charger_stopped,
        flags=row.flags,
    )


@dataclass(frozen=True)
class GroupReads:
    """What a group of Stops read once for all its sessions' ends: their chargers and the
    chargers' locations, by id (None: there is none of that id)."""

    chargers: Mapping[str, ChargePoint | None]
    locations: Mapping[str, Location | None]


class SessionEnd:
    """What a transaction's end publishes and settles (the charger's Stop, a forced stop, a
    Start that ends a lost session); `SessionFlows` records the end itself."""

    def __init__(
        self,
        *,
        party: Party,
        pricing: SessionPricing | None,
        wallet: WalletFlows | None,
    ) -> None:
        self.party = party
        self.pricing = pricing
        self.wallet = wallet

    async def statuses(
        self, session: AsyncSession, rows: Sequence[Transaction]
    ) -> dict[int, list[tuple[datetime, str]]]:
        """The connector statuses that settle these stopped transactions, one query for all."""
        if self.pricing is None:
            return {}
        ids = [row.id for row in rows if row.id is not None]
        return await tariffs.connector_statuses_of(session, ids)

    async def ended_alone(
        self, session: AsyncSession, *, transaction_id: int, location_id: str | None, now: datetime
    ) -> list[Event]:
        """`ended` for one transaction that has just ended, its row and samples read and its
        CDR marks recorded here (a forced stop, a lost session's end, an odd Stop)."""
        row = await session.get(Transaction, transaction_id, populate_existing=True)
        assert row is not None
        stored = await samples.transaction_samples(session, transaction_id)
        events, mark = await self.ended(
            session, row, samples=samples.samples_of(stored), location_id=location_id, now=now
        )
        if mark is not None:
            step, estimate = mark
            await transactions.record_cdrs(session, row, step=step, estimated_cdr=estimate, now=now)
        return events

    async def ended(
        self,
        session: AsyncSession,
        row: Transaction,
        *,
        samples: Sequence[Sample],
        location_id: str | None,
        now: datetime,
        known: Mapping[int, TransactionPricing] | None = None,
        statuses: Sequence[tuple[datetime, str]] | None = None,
    ) -> tuple[list[Event], CdrMark | None]:
        """`session.stopped` for a transaction that has just ended, and the CDRs it needs,
        with what the caller must note on its row (`transactions.record_cdrs`): `settle`,
        then `end_events`."""
        settled = await self.settle(
            session,
            row,
            samples=samples,
            location_id=location_id,
            now=now,
            known=known,
            statuses=statuses,
        )
        return ([], None) if settled is None else end_events(settled)

    async def settle(
        self,
        session: AsyncSession,
        row: Transaction,
        *,
        samples: Sequence[Sample],
        location_id: str | None,
        now: datetime,
        known: Mapping[int, TransactionPricing] | None = None,
        statuses: Sequence[tuple[datetime, str]] | None = None,
        place: GroupReads | None = None,
        step: CdrStep | None = None,
    ) -> EndFacts | None:
        """What a transaction that has just ended publishes, as pure data (`end_events`
        builds the events from it alone): read, priced and charged to the wallet here, in
        the caller's transaction. None when it has not both started and stopped.

        The caller has just ended it in this job, so it holds the row (docs/events.md,
        cdr.created): its one CDR, estimated when csms ended it; and when the charger's own
        Stop follows an estimate, a credit for the estimate and a CDR with the real values
        (OCPI 2.2.1 mod_cdrs §Credit CDRs).

        A group of Stops gives what it read for all (`place`: chargers and locations) and
        each row's `step`, decided before it noted the CDR on the row (`cdr_step`).
        """
        assert row.id is not None
        if row.start_timestamp is None or row.stop_timestamp is None:
            return None
        facts = session_facts(row, party=self.party, location_id=location_id, samples=samples)
        # Priced and charged with the charger's values, or with the estimate when csms ended
        # the session itself; a correction credits the estimate (docs/tariffs.md, "Estimated
        # and corrected CDRs").
        settled = None
        if self.pricing is not None and facts.meter_stop_wh is not None:
            settled = await self.pricing.settle(
                session,
                row=row,
                facts=facts,
                now=now,
                known=known,
                statuses=statuses,
                chargers=None if place is None else place.chargers,
            )
        priced = None if settled is None else settled.priced
        if step is None:
            step = row_cdr_step(row)
        ending = EndFacts(
            facts=facts,
            party=self.party,
            end=session_end(charger_stopped=row.charger_stopped, flags=row.flags),
            stopped_at=row.stop_timestamp,
            stop_reason=row.stop_reason,
            priced=priced,
            step=step,
            now=now,
        )
        if step is CdrStep.NONE:
            return ending
        first = row.estimated_cdr if step is CdrStep.CORRECTION else None
        assert step is not CdrStep.CORRECTION or first is not None
        ending = replace(
            ending,
            location=await self._cdr_location(session, row, place),
            first_cdr=first,
            parking_s=0 if settled is None else settled.parking_s,
            purchase_cost=None if settled is None else settled.purchase_cost,
        )
        if self.wallet is None or settled is None or settled.user_id is None:
            return ending
        wallet: list[Event] = []
        replaces = None if first is None else str(first["cdrId"])
        if replaces is not None:
            wallet += await self.wallet.credit_session(
                session,
                user_id=settled.user_id,
                transaction_id=row.id,
                credited_cdr_id=replaces,
                credit_cdr_id=f"{replaces}-C",
                now=now,
            )
        assert priced is not None
        total = priced.costs.total
        wallet += await self.wallet.charge_session(
            session,
            user_id=settled.user_id,
            transaction_id=row.id,
            amount=total.incl_vat if total.incl_vat is not None else total.excl_vat,
            currency=priced.costs.currency,
            now=now,
            # The id the CDR gets in `end_events` (`build.cdr_created`).
            cdr_id=build.cdr_id(row.id, replacement=replaces is not None),
        )
        return replace(ending, wallet_events=tuple(wallet))

    async def _cdr_location(
        self, session: AsyncSession, row: Transaction, place: GroupReads | None
    ) -> CdrLocationFacts | None:
        if place is not None and row.charge_point_id in place.chargers:
            charger = place.chargers[row.charge_point_id]
        else:
            charger = await chargers.get_charge_point(session, row.charge_point_id)
        if charger is None or charger.location_id is None:
            return None
        if place is not None and charger.location_id in place.locations:
            location = place.locations[charger.location_id]
        else:
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
