"""SessionFlows as `csms serve` builds them (tariffs and wallets), on a database of their own
with the writer running, and the calls a charger's sessions make, from OCPP-J payloads.

Shared by the grouped-writes tests (tests/flows/test_session_groups.py) and the in-process
benchmark (bench/sessions_inprocess.py), so the benchmark measures what the tests check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from csms.core.authorize import IdTagInfo
from csms.core.session import Party
from csms.core.transactions import StartKey
from csms.flows.sessions import OpenSessions, SessionFlows
from csms.flows.tariffs import SessionPricing
from csms.flows.wallet import WalletFlows
from csms.metrics import Metrics
from csms.ocpp16 import convert
from csms.store import registry
from csms.store.db import Database
from csms.store.transactions import StartOutcome

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARTY = Party(country_code="BE", party_id="BEC", currency="EUR")
ENERGY = "Energy.Active.Import.Register"


@dataclass
class RunningFlows:
    """The database and the session flows on it; the writer runs until the context ends."""

    database: Database
    flows: SessionFlows


@asynccontextmanager
async def running_flows(
    url: str, *, accepted: Sequence[str], metrics: Metrics | None = None
) -> AsyncIterator[RunningFlows]:
    """SessionFlows on the database at `url` (migrated here), the `accepted` id tags
    registered as Accepted; the writer is closed, and every job it took committed, at the
    end."""
    database = Database(url, metrics=metrics)
    await database.migrate()
    pricing = SessionPricing(database=database, party=PARTY)
    wallet = WalletFlows(database=database, party=PARTY, pricing=pricing, clock=lambda: NOW)
    flows = SessionFlows(database=database, party=PARTY, pricing=pricing, wallet=wallet)
    writer = asyncio.create_task(database.writer.run())
    try:
        for tag in accepted:
            await database.writer.submit(
                lambda session, tag=tag: registry.upsert_id_tag(
                    session, id_tag=tag, values={"status": "Accepted"}, now=NOW
                )
            )
        yield RunningFlows(database=database, flows=flows)
    finally:
        database.writer.close()
        await writer
        await database.dispose()


def start_key(cp: str, *, tag: str, at: datetime, meter_start: int = 1000) -> StartKey:
    """The key of a StartTransaction on connector 1, as the OCPP adapter converts it."""
    at_text = at.isoformat()
    payload = {"connectorId": 1, "idTag": tag, "meterStart": meter_start, "timestamp": at_text}
    key, _ = convert.start_key(cp, payload, received=NOW)
    return key


async def start(flows: SessionFlows, key: StartKey, opened: OpenSessions) -> StartOutcome:
    """A StartTransaction without reservation or flags, the charger not at a location."""
    return await flows.start(
        key=key,
        reservation_id=None,
        flags=(),
        location_id=None,
        open_sessions=opened,
        now=NOW,
    )


def energy(register_wh: int) -> dict[str, Any]:
    """A sampledValue of the energy register."""
    return {"value": str(register_wh), "measurand": ENERGY}


async def meter_values(
    flows: SessionFlows,
    cp: str,
    tx: int,
    *,
    at: datetime,
    sampled: list[dict[str, Any]],
    opened: OpenSessions,
) -> None:
    """A MeterValues on connector 1 naming `tx`: one meterValue at `at`."""
    payload = [{"timestamp": at.isoformat(), "sampledValue": sampled}]
    await flows.record_meter_values(
        charge_point_id=cp,
        connector_id=1,
        transaction_id=tx,
        samples=convert.samples(payload, received=NOW),
        location_id=None,
        open_sessions=opened,
        now=NOW,
    )


async def stop(
    flows: SessionFlows,
    cp: str,
    tx: int,
    *,
    at: datetime,
    meter_stop: int,
    tag: str,
    opened: OpenSessions | None = None,
) -> IdTagInfo | None:
    """A StopTransaction of `tx` with its idTag, as the OCPP adapter converts it."""
    at_text = at.isoformat()
    payload = {"transactionId": tx, "meterStop": meter_stop, "timestamp": at_text, "idTag": tag}
    request = convert.stop_request(cp, payload, received=NOW)
    return await flows.stop(
        request=request, location_id=None, open_sessions={} if opened is None else opened, now=NOW
    )
