"""64-bit surrogate ids (csms/store/tables/columns.py, BIG_ID; migration 0018_bigint_ids):
the schema each dialect gets, and the write paths with ids past 2^31 on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from importlib.resources import files
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Connection, Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel

from csms.store import outbox, webhooks
from csms.store.db import Database
from csms.store.tables import (
    ChargerMessage,
    Command,
    MeterValue,
    OutboxEvent,
    SecurityEvent,
    StatusNotification,
    WebhookDelivery,
    table_of,
)
from tests.cluster.nodes import MQTT_URL, running_cluster
from tests.sessions import RFID, START, meter
from tests.strict_charger import EXAMPLES, strict_charger
from tests.support import MOSQUITTO_UP, MS, RunningCsms, mqtt_of, running_csms, subscribed
from tests.webhooks.helpers import after_commits, caught_up, subscribe, webhook_settings
from tests.webhooks.receiver import Receiver, serving

# Past int4's 2^31 - 1, and far enough apart that no two tables' ids meet.
PAST_INT32 = 3_000_000_000
# The OCPP ids: int4 on purpose (an int32 at the charger).
OCPP_IDS = {"transactions", "reservations"}


def _big_id_tables() -> list[Table]:
    """The tables whose `id` is BIG_ID in the models, in a fixed order."""
    return sorted(
        (
            table
            for table in SQLModel.metadata.tables.values()
            if "id" in table.c
            and table.c.id.primary_key
            and isinstance(table.c.id.type, BigInteger)
        ),
        key=lambda table: table.name,
    )


def _upgrade(connection: Connection, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("csms.store") / "migrations"))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


def _postgres_types(connection: Connection) -> dict[str, tuple[str, str]]:
    """Each table's `id` type, and the type of the sequence behind it."""
    rows = connection.execute(
        text(
            "SELECT c.table_name, c.data_type, s.data_type FROM information_schema.columns c"
            " JOIN pg_sequences s ON pg_get_serial_sequence(c.table_name, 'id')"
            " = quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename)"
            " WHERE c.table_schema = 'public' AND c.column_name = 'id'"
        )
    )
    return {str(name): (str(column), str(sequence)) for name, column, sequence in rows}


def _sqlite_types(connection: Connection) -> dict[str, tuple[str, int]]:
    """Each table's `id` declared type and primary-key flag, as SQLite keeps them."""
    found: dict[str, tuple[str, int]] = {}
    for table in SQLModel.metadata.tables:
        for _, name, declared, _, _, pk in connection.exec_driver_sql(
            f"PRAGMA table_info({table})"
        ):
            if name == "id":
                found[table] = (str(declared), int(pk))
    return found


def test_the_models_declare_integer_on_sqlite_and_bigserial_on_postgresql() -> None:
    """The DDL the models would give: SQLite's rowid alias (INTEGER PRIMARY KEY, not BIGINT,
    which would be an ordinary column), PostgreSQL's 64-bit serial."""
    for table in _big_id_tables():
        on_sqlite = str(CreateTable(table).compile(dialect=sqlite.dialect()))
        on_postgresql = str(CreateTable(table).compile(dialect=postgresql.dialect()))
        assert "\tid INTEGER NOT NULL" in on_sqlite, on_sqlite
        assert "PRIMARY KEY (id)" in on_sqlite, on_sqlite
        assert "\tid BIGSERIAL NOT NULL" in on_postgresql, on_postgresql


@pytest.mark.postgres
async def test_growing_ids_are_64_bit_and_sqlite_keeps_its_rowid(database_url: str) -> None:
    """After `migrate`: on PostgreSQL the BIG_ID columns and their sequences are bigint, the
    OCPP ids int4; on SQLite every such id is still declared INTEGER, the rowid alias."""
    tables = {table.name for table in _big_id_tables()}
    assert {"outbox_events", "meter_values", "webhook_deliveries", "commands"} <= tables
    assert not tables & OCPP_IDS
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                types = await connection.run_sync(_postgres_types)
                assert {name: types[name] for name in tables} == {
                    name: ("bigint", "bigint") for name in tables
                }
                assert {name: types[name] for name in OCPP_IDS} == {
                    name: ("integer", "integer") for name in OCPP_IDS
                }
            else:
                declared = await connection.run_sync(_sqlite_types)
                assert {name: declared[name] for name in tables} == {
                    name: ("INTEGER", 1) for name in tables
                }
    finally:
        await database.dispose()


@pytest.mark.postgres_only
async def test_the_migration_goes_down_to_int4_and_up_again(database_url: str) -> None:
    """0018_bigint_ids downgrades to the int4 columns and sequences, and upgrades back."""
    tables = {table.name for table in _big_id_tables()}
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade, "0017_event_key_width", down=True)
            down = await connection.run_sync(_postgres_types)
            await connection.run_sync(_upgrade, "head")
            up = await connection.run_sync(_postgres_types)
    finally:
        await database.dispose()
    assert {name: down[name] for name in tables} == {
        name: ("integer", "integer") for name in tables
    }
    assert {name: up[name] for name in tables} == {name: ("bigint", "bigint") for name in tables}


async def _ids_past_int32(database_url: str) -> None:
    """A migrated database whose BIG_ID sequences all hand out ids past 2^31 next."""
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.engine.begin() as connection:
            for n, table in enumerate(_big_id_tables()):
                await connection.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :at, false)"),
                    {"table": table.name, "at": PAST_INT32 + n * 1_000_000},
                )
    finally:
        await database.dispose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving() as running:
        yield running


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms with webhooks on, on a database whose ids are past 2^31 from the start."""
    await _ids_past_int32(database_url)
    async with running_csms(webhook_settings(database_url)) as running:
        yield running


async def _outbox_drained(csms: RunningCsms) -> None:
    """Wait until the relay has marked every outbox row delivered (after the broker's ack)."""

    async def drained() -> bool | None:
        waiting, _ = await csms.app.database.read(outbox.backlog)
        return None if waiting else True

    await after_commits(csms, drained)


async def _ids(database: Database, table: Any) -> list[int]:
    async with database.sessions() as session:
        return list((await session.execute(select(table_of(table).c.id))).scalars())


@pytest.mark.postgres_only
async def test_the_write_paths_work_past_2_to_the_31(
    hooks: RunningCsms, receiver: Receiver
) -> None:
    """With every BIG_ID sequence past 2^31: a charger's messages are stored through the
    writer, their events go through the outbox and the relay to the real broker and to a
    webhook, a command is recorded, and all of it reads back, pruning included."""
    mqtt = mqtt_of(hooks)
    async with hooks.api() as api, subscribed(mqtt.url, mqtt.topic_prefix) as events:
        secret = await subscribe(api, "all", f"{receiver.url}/all", event_types=["*"])
        await api.put(f"/id-tags/{RFID}", json={"status": "Accepted"})
        async with strict_charger(f"{hooks.ocpp_url}/CP-BIG") as cp:
            await cp.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
            )
            tx = (await cp.call("StartTransaction", START))["transactionId"]
            await cp.call("MeterValues", meter(tx, 4000, "2026-03-01T10:45:00Z"))
            await cp.call(
                "SecurityEventNotification",
                {"type": "StartupOfTheDevice", "timestamp": "2026-03-01T12:00:00Z"},
            )
            await cp.call("DataTransfer", {"vendorId": "com.example", "messageId": "big"})
            reserve = EXAMPLES["ReserveNow"][0]
            answer = await api.post("/charge-points/CP-BIG/commands/ReserveNow", json=reserve)
            assert answer.status_code == 200, answer.text
            # The disconnect's events too are in the outbox before it is read: csms
            # reports the charger gone once they are committed.
            gone = asyncio.Event()
            hooks.app.ocpp.listeners.append(
                lambda identity, connected: None if connected else gone.set()
            )
        async with asyncio.timeout(10_000 * MS):
            await gone.wait()
        await _outbox_drained(hooks)
        await caught_up(hooks, "all")
        database = hooks.app.database
        outbox_ids = await _ids(database, OutboxEvent)
        on_mqtt = await events.until(len(outbox_ids))
        await receiver.until(len(outbox_ids), path="/all")
        deliveries = await api.get("/webhooks/all/deliveries")
        assert deliveries.status_code == 200, deliveries.text
        listed = [d["id"] for d in deliveries.json()["items"]]
        # A replay names a logged delivery by its id: past 2^31 too.
        replay = await api.post("/webhooks/all/replay", json={"deliveryId": max(listed)})
        assert replay.status_code == 202, replay.text
        assert replay.json()["events"] == 1
        records = await api.get("/charge-points/CP-BIG/commands")
        assert records.status_code == 200, records.text
        assert [r["commandId"] >= PAST_INT32 for r in records.json()["items"]] == [True]

    for table in (
        OutboxEvent,
        MeterValue,
        StatusNotification,
        SecurityEvent,
        ChargerMessage,
        Command,
        WebhookDelivery,
    ):
        ids = await _ids(database, table)
        assert ids, table
        assert min(ids) >= PAST_INT32, table
    async with database.sessions() as session:
        rows = (await session.execute(select(OutboxEvent))).scalars().all()
        logged = (await session.execute(select(WebhookDelivery))).scalars().all()
    # Every event published once, delivered to the webhook under its outbox row's id.
    assert all(row.delivered_at is not None for row in rows)
    by_event = {row.event_id: row.id for row in rows}
    assert sorted(event["id"] for event in on_mqtt) == sorted(by_event)
    assert {d.verified(secret)["id"] for d in receiver.at("/all")} == set(by_event)
    first_sent = sorted((d.event_id, d.outbox_id) for d in logged if not d.replay)
    assert first_sent == sorted(by_event.items())
    assert listed
    assert min(listed) >= PAST_INT32
    subscription = await database.read(lambda session: webhooks.get_subscription(session, "all"))
    assert subscription is not None
    assert subscription.cursor == max(outbox_ids)
    # Pruning compares ids with the webhook cursor (a bind past 2^31): all but the newest go.
    newest = max(outbox_ids)
    later = max(row.delivered_at for row in rows if row.delivered_at) + timedelta(seconds=1)
    pruned = await database.writer.submit(
        partial(outbox.prune, delivered_before=later, keep_after=newest)
    )
    assert pruned == len(outbox_ids) - 1
    assert await _ids(database, OutboxEvent) == [newest]


async def _cluster_outbox(database_url: str) -> list[tuple[int, str, bool]]:
    """Every outbox row: id, event id, delivered."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            rows = await session.execute(
                select(
                    table_of(OutboxEvent).c.id,
                    table_of(OutboxEvent).c.event_id,
                    table_of(OutboxEvent).c.delivered_at.is_not(None),
                ).order_by(table_of(OutboxEvent).c.id)
            )
            return [(int(i), str(e), bool(d)) for i, e, d in rows]
    finally:
        await database.dispose()


@pytest.mark.postgres_only
async def test_the_cluster_relay_publishes_ids_past_2_to_the_31(database_url: str) -> None:
    """Cluster mode: the partitioned relay (packet ids from row ids, relay_state and
    delivered marks by id arrays) publishes rows whose ids are past 2^31 exactly once."""
    if not MOSQUITTO_UP:
        pytest.skip("cluster mode needs Mosquitto on 127.0.0.1:1883")
    await _ids_past_int32(database_url)
    async with running_cluster(database_url, size=1) as cluster:
        node = cluster.nodes[0]
        async with subscribed(MQTT_URL, cluster.prefix) as events:
            async with strict_charger(f"{node.ocpp_url}/CP-BIGC") as cp:
                await cp.call(
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
                )
                written = await _cluster_outbox(database_url)
            # A drained node (SIGTERM) has published its partitions and marked them.
            on_mqtt = await events.until(len(written))
            assert await node.stop() == 0
        rows = await _cluster_outbox(database_url)
    assert written
    assert min(row_id for row_id, _, _ in rows) >= PAST_INT32
    assert all(delivered for _, _, delivered in rows)
    assert {e for _, e, _ in written} <= {event["id"] for event in on_mqtt}
    assert len({event["id"] for event in on_mqtt}) == len(on_mqtt)
