"""A session's end: `session.stopped`, the CDRs it needs and the settlement of its cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.events import Event
from csms.core.meter import Sample
from csms.core.ocpi import CdrLocationFacts
from csms.core.session import Party, SessionFacts
from csms.core.transactions import CdrStep, cdr_step, estimated_meter_stop, session_end
from csms.events import build
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.store import chargers, samples, tariffs, transactions
from csms.store.tables import Location, Transaction, TransactionPricing

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
        with what the caller must note on its row (`transactions.record_cdrs`).

        The caller has just ended it in this job, so it holds the row (docs/events.md,
        cdr.created): its one CDR, estimated when csms ended it; and when the charger's own
        Stop follows an estimate, a credit for the estimate and a CDR with the real values
        (OCPI 2.2.1 mod_cdrs §Credit CDRs).
        """
        assert row.id is not None
        if row.start_timestamp is None or row.stop_timestamp is None:
            return [], None
        facts = session_facts(
            row,
            party=self.party,
            location_id=location_id,
            samples=samples,
        )
        end = session_end(charger_stopped=row.charger_stopped, flags=row.flags)
        # Priced and charged with the charger's values, or with the estimate when csms ended
        # the session itself; a correction credits the estimate (docs/tariffs.md, "Estimated
        # and corrected CDRs").
        settled = None
        if self.pricing is not None and facts.meter_stop_wh is not None:
            settled = await self.pricing.settle(
                session, row=row, facts=facts, now=now, known=known, statuses=statuses
            )
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
            return events, None
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
        if self.wallet is not None and settled is not None and settled.user_id is not None:
            if replaces is not None:
                events += await self.wallet.credit_session(
                    session,
                    user_id=settled.user_id,
                    transaction_id=row.id,
                    credited_cdr_id=replaces,
                    credit_cdr_id=f"{replaces}-C",
                    now=now,
                )
            assert priced is not None
            total = priced.costs.total
            events += await self.wallet.charge_session(
                session,
                user_id=settled.user_id,
                transaction_id=row.id,
                amount=total.incl_vat if total.incl_vat is not None else total.excl_vat,
                currency=priced.costs.currency,
                now=now,
                cdr_id=str(cdr.data["cdrId"]),
            )
        return events, (step, estimate)

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
