"""StopTransaction: a writer batch's Stops as one group, and the odd ones one by one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import IdTagInfo
from csms.core.events import Event
from csms.core.transactions import CdrStep, StopRequest, is_own_transaction
from csms.flows.session_end import EndFacts, GroupReads, SessionEnd, end_events
from csms.flows.tariffs import SessionPricing
from csms.store import outbox, registry, samples, tariffs, transactions
from csms.store import transactions_bulk as bulk
from csms.store.tables import Transaction


@dataclass(frozen=True)
class StopItem:
    """A StopTransaction as the writer's group of Stops takes it."""

    request: StopRequest
    location_id: str | None
    now: datetime


def _first_per_transaction(stops: Sequence[StopItem]) -> list[StopItem]:
    """The first Stop of each transactionId of a group (the others go one by one)."""
    seen: set[int] = set()
    firsts = []
    for stop in stops:
        if stop.request.transaction_id not in seen:
            seen.add(stop.request.transaction_id)
            firsts.append(stop)
    return firsts


def _open(row: Transaction, stop: StopItem) -> bool:
    """Whether the Stop ends this charger's transaction now: the group's common case."""
    owner = row.charge_point_id
    charge_point_id = stop.request.charge_point_id
    return is_own_transaction(owner=owner, charge_point_id=charge_point_id) and not (
        row.charger_stopped
    )


class SessionStops:
    """Records Stops, one per transaction whatever the charger resends, with `session.stopped`
    and its one CDR (`SessionEnd`); `SessionFlows.stop` submits them to the writer."""

    def __init__(self, *, end: SessionEnd, pricing: SessionPricing | None) -> None:
        self._end = end
        self._pricing = pricing

    async def run_group(
        self, session: AsyncSession, stops: list[StopItem]
    ) -> list[IdTagInfo | None]:
        """A batch's Stops together: each read is one query for the group and the rows'
        updates one executemany (csms.store.transactions_bulk). A Stop of an unknown, foreign
        or already stopped transaction goes one by one (`_stop`), as does a second Stop of one
        transaction in a batch."""
        firsts = _first_per_transaction(stops)
        tags = await bulk.id_tags(
            session, {s.request.id_tag for s in firsts if s.request.id_tag is not None}
        )
        rows = await bulk.locked_transactions(session, {s.request.transaction_id for s in firsts})
        here = [
            (s, row)
            for s in firsts
            if (row := rows.get(s.request.transaction_id)) is not None and _open(row, s)
        ]
        # The rows' updates as one statement; the CDR each Stop's events will carry is
        # noted on its row with the Stop itself (`stop_write`), and the events are built
        # from that step (`settle`).
        writes = [bulk.stop_write(row, request=s.request, now=s.now) for s, row in here]
        steps: dict[int, CdrStep] = {id(s): w.step for (s, _), w in zip(here, writes, strict=True)}
        await bulk.write_stops(session, writes)
        for s, row in here:
            if s.request.samples:
                await samples.insert_samples(
                    session,
                    charge_point_id=s.request.charge_point_id,
                    connector_id=row.connector_id,
                    transaction_id=s.request.transaction_id,
                    samples=s.request.samples,
                    now=s.now,
                )
        ids = [s.request.transaction_id for s, _ in here]
        await samples.flag_after_stops(
            session, [(s.request.transaction_id, s.request.stopped.value) for s, _ in here]
        )
        read = await bulk.samples_of(session, ids)
        # The chargers and their locations, for the CDRs and the purchase costs of all.
        cps = {row.charge_point_id for _, row in here}
        chargers_read = await bulk.charge_points(session, cps)
        located = {c.location_id for c in chargers_read.values() if c.location_id is not None}
        locations_read = await bulk.locations(session, located)
        place = GroupReads(
            chargers={cp: chargers_read.get(cp) for cp in cps},
            locations={lid: locations_read.get(lid) for lid in located},
        )
        known = None if self._pricing is None else await tariffs.pricing_of(session, ids)
        statuses = await self._end.statuses(session, [row for _, row in here])
        done: dict[int, IdTagInfo | None] = {}
        endings: list[EndFacts] = []
        for s, row in here:
            ending = await self._end.settle(
                session,
                row,
                samples=read[s.request.transaction_id],
                location_id=s.location_id,
                now=s.now,
                known=known,
                statuses=statuses.get(s.request.transaction_id),
                place=place,
                step=steps[id(s)],
            )
            if ending is not None:
                endings.append(ending)
            tag = s.request.id_tag
            done[id(s)] = None if tag is None else registry.decide(tags.get(tag), now=s.now)
        # Every statement of the group but the last has run: the events are built from pure
        # data now, then inserted with one statement, in this transaction (the change and
        # its events commit together). Their CDR marks are on the rows already (above).
        events: list[Event] = []
        for ending in endings:
            built, mark = end_events(ending)
            assert mark is None or mark == (ending.step, None)
            events += built
        await outbox.add_events(session, events, now=max(s.now for s in stops))
        for s in stops:
            if id(s) not in done:
                done[id(s)] = await self._stop(session, s)
        return [done[id(s)] for s in stops]

    async def _stop(self, session: AsyncSession, stop: StopItem) -> IdTagInfo | None:
        """One Stop on its own (`transactions.stop_transaction`)."""
        outcome = await transactions.stop_transaction(session, request=stop.request, now=stop.now)
        if outcome.stopped is not None:
            events = await self._end.ended_alone(
                session,
                transaction_id=outcome.stopped,
                location_id=stop.location_id,
                now=stop.now,
            )
            await outbox.add_events(session, events, now=stop.now)
        return outcome.id_tag_info
