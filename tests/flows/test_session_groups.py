"""A batch's Authorize, Start and Stop requests run as groups: the same answers, rows and
events as one by one, repeats and odd cases included."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from csms.core.transactions import StartKey
from csms.flows.sessions import OpenSessions, SessionFlows
from csms.metrics import Metrics
from csms.store.db import Database
from csms.store.tables import MeterValue, OutboxEvent, Transaction, table_of
from tests import session_flows
from tests.session_flows import NOW

pytestmark = pytest.mark.postgres


@dataclass
class Setup:
    database: Database
    flows: SessionFlows
    metrics: Metrics

    async def in_one_batch(self, *calls: Awaitable[Any]) -> list[Any]:
        """Run the calls in one writer batch (and check that they were).

        Each task runs to its submit before the idle writer wakes (asyncio runs ready
        tasks in order), so the writer finds them all queued.
        """
        before = _batches(self.metrics)
        results = await asyncio.gather(*(asyncio.ensure_future(call) for call in calls))
        assert _batches(self.metrics) == before + 1
        return results

    async def count(self, query: Any) -> int:
        async with self.database.reading() as session:
            return int((await session.execute(query)).scalar_one())

    async def events(self, event_type: str) -> int:
        table = table_of(OutboxEvent)
        query = select(func.count()).select_from(table).where(table.c.type == event_type)
        return await self.count(query)


def _batches(metrics: Metrics) -> float:
    for metric in metrics.db_batch_jobs.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return sample.value
    return 0.0


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    metrics = Metrics()
    async with session_flows.running_flows(
        database_url, accepted=["GOOD"], metrics=metrics
    ) as running:
        yield Setup(database=running.database, flows=running.flows, metrics=metrics)


def _key(cp: str, *, tag: str = "GOOD", minutes: int = 0) -> StartKey:
    return session_flows.start_key(cp, tag=tag, at=NOW + timedelta(minutes=minutes))


def _start(flows: SessionFlows, key: StartKey, opened: OpenSessions | None = None) -> Any:
    return session_flows.start(flows, key, {} if opened is None else opened)


def _stop(flows: SessionFlows, cp: str, tx: int, *, minutes: int = 30) -> Any:
    at = NOW + timedelta(minutes=minutes)
    return session_flows.stop(flows, cp, tx, at=at, meter_stop=5000, tag="GOOD")


async def test_authorize_requests_of_one_batch(setup: Setup) -> None:
    """Each Authorize of a batch gets its own tag's answer and its own event."""
    flows = setup.flows
    infos = await setup.in_one_batch(
        flows.authorize(charge_point_id="CP1", id_tag="GOOD", now=NOW),
        flows.authorize(charge_point_id="CP2", id_tag="NOPE", now=NOW),
        flows.authorize(charge_point_id="CP3", id_tag="GOOD", now=NOW),
    )
    assert [info.status.value for info in infos] == ["Accepted", "Invalid", "Accepted"]
    assert await setup.events("authorization") == 3


async def test_starts_of_one_batch_with_a_repeat(setup: Setup) -> None:
    """A batch of Starts: one transaction each, a repeated Start gets the same id, an unknown
    tag is Invalid but still gets an id (OCPP 1.6 §4.8), one session.started each."""
    flows = setup.flows
    opened: OpenSessions = {}
    outcomes = await setup.in_one_batch(
        *(_start(flows, _key(f"CP{n}"), opened) for n in range(1, 5)),
        _start(flows, _key("CP1")),
        _start(flows, _key("CP5", tag="NOPE")),
    )
    ids = [outcome.transaction_id for outcome in outcomes]
    assert ids[0] == ids[4]
    assert len(set(ids)) == 5
    assert [outcome.created for outcome in outcomes] == [True] * 4 + [False, True]
    assert outcomes[5].id_tag_info.status.value == "Invalid"
    assert set(opened) == set(ids[:4])
    assert await setup.count(select(func.count()).select_from(table_of(Transaction))) == 5
    assert await setup.events("session.started") == 5
    assert await setup.events("authorization") == 5


async def test_the_start_groups_insert_is_compiled_once_per_size(setup: Setup) -> None:
    """Two groups of three Starts run the same compiled insert (SQLAlchemy does not cache a
    multi-row VALUES: transactions_bulk writes it as SQL text) and get their rows."""
    compiled: list[Any] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO transactions"):
            compiled.append(args[-2].compiled)

    engine = setup.database.write_engine.sync_engine
    event.listen(engine, "after_cursor_execute", note)
    try:
        for minutes in (0, 60):
            outcomes = await setup.in_one_batch(
                *(_start(setup.flows, _key(f"CP{n}", minutes=minutes)) for n in (1, 2, 3))
            )
            assert all(outcome.created for outcome in outcomes)
    finally:
        event.remove(engine, "after_cursor_execute", note)
    assert len(compiled) == 2
    assert compiled[0] is compiled[1]
    assert await setup.count(select(func.count()).select_from(table_of(Transaction))) == 6


async def test_a_start_on_a_busy_connector_in_a_batch_ends_the_open_one(setup: Setup) -> None:
    """A Start on a connector whose transaction is open ends that one (its Stop was lost),
    beside other chargers' Starts in the same batch."""
    flows = setup.flows
    first = await _start(flows, _key("CP1"))
    second, other = await setup.in_one_batch(
        _start(flows, _key("CP1", minutes=10)), _start(flows, _key("CP2"))
    )
    assert second.ended == [first.transaction_id]
    assert other.ended == []
    assert await setup.events("session.stopped") == 1
    assert await setup.events("cdr.created") == 1


async def test_stops_of_one_batch_with_repeats_and_strangers(setup: Setup) -> None:
    """A batch of Stops: the charger's own is recorded once though sent twice; another
    charger's transaction and an unknown id are kept as orphans; every Stop is answered."""
    flows = setup.flows
    one, two, three = await setup.in_one_batch(*(_start(flows, _key(f"CP{n}")) for n in (1, 2, 3)))
    infos = await setup.in_one_batch(
        _stop(flows, "CP1", one.transaction_id),
        _stop(flows, "CP1", one.transaction_id),
        _stop(flows, "CP2", three.transaction_id),
        _stop(flows, "CP3", 999_999),
        _stop(flows, "CP2", two.transaction_id, minutes=45),
    )
    assert [info.status.value for info in infos] == ["Accepted"] * 5
    tx = table_of(Transaction)
    stopped = select(func.count()).select_from(tx).where(tx.c.charger_stopped.is_(True))
    # CP1's and CP2's own, and the two orphans.
    assert await setup.count(stopped) == 4
    assert await setup.count(select(func.count()).select_from(tx)) == 5
    open_three = (
        select(func.count())
        .select_from(tx)
        .where(tx.c.id == three.transaction_id, tx.c.stop_timestamp.is_(None))
    )
    assert await setup.count(open_three) == 1
    assert await setup.events("session.stopped") == 2
    assert await setup.events("cdr.created") == 2


_REGISTER = itertools.count(1500, 100)


def _meter(flows: SessionFlows, cp: str, tx: int, opened: OpenSessions) -> Any:
    # A new reading each time: an exact repeat of a sample would be stored once.
    sampled = [session_flows.energy(next(_REGISTER))]
    at = NOW + timedelta(minutes=5)
    return session_flows.meter_values(flows, cp, tx, at=at, sampled=sampled, opened=opened)


async def test_an_unknown_transaction_id_is_read_once_per_connection(setup: Setup) -> None:
    """MeterValues naming an unknown (or another charger's) transactionId read it once; the
    next ones cost no read, and their samples are still stored."""
    flows = setup.flows
    other = await _start(flows, _key("CP2"))
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM transactions" in statement:
            reads.append(statement)

    opened: OpenSessions = {}
    event.listen(setup.database.engine.sync_engine, "before_cursor_execute", count)
    try:
        for tx in (999_999, other.transaction_id):
            await _meter(flows, "CP1", tx, opened)
            first = len(reads)
            await _meter(flows, "CP1", tx, opened)
            await _meter(flows, "CP1", tx, opened)
            assert len(reads) == first
    finally:
        event.remove(setup.database.engine.sync_engine, "before_cursor_execute", count)
    assert len(reads) == 2
    mv = table_of(MeterValue)
    assert await setup.count(select(func.count()).select_from(mv)) == 6
    assert await setup.events("session.updated") == 0
    # The charger's own transaction, once started, is an open session again.
    mine = await _start(flows, _key("CP1"), opened)
    await _meter(flows, "CP1", mine.transaction_id, opened)
    assert await setup.events("session.updated") == 1
