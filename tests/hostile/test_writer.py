"""One bad job must not slow everyone: a failing batch is bisected, not re-run job by job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.store import registry
from csms.store.db import MAX_BATCH, Database
from csms.store.tables import IdTag

pytestmark = pytest.mark.postgres

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def tag(name: str) -> Any:
    async def job(session: AsyncSession) -> bool:
        return await registry.upsert_id_tag(
            session, id_tag=name, values={"status": "Accepted"}, now=NOW
        )

    return job


async def explode(session: AsyncSession) -> None:
    await registry.upsert_id_tag(session, id_tag="BOOM", values={"status": "Accepted"}, now=NOW)
    raise ValueError("a job that always fails")


async def test_one_bad_job_costs_a_few_transactions_not_one_per_job(database: Database) -> None:
    """A full batch with one failing job commits in about 2·log2(n) transactions."""
    commits = 0

    def counted(_connection: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(database.write_engine.sync_engine, "commit", counted)
    jobs = [tag(f"T{n:03d}") for n in range(MAX_BATCH - 1)]
    jobs.insert(MAX_BATCH // 3, explode)
    results = await asyncio.gather(
        *(database.writer.submit(job) for job in jobs), return_exceptions=True
    )
    event.remove(database.write_engine.sync_engine, "commit", counted)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1
    assert isinstance(failed[0], ValueError)
    assert commits <= 2 * MAX_BATCH.bit_length() + 1
    async with database.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(IdTag))).scalar_one()
    assert total == MAX_BATCH - 1


async def test_several_bad_jobs_are_each_isolated(database: Database) -> None:
    """Several failing jobs in one batch: each caller hears its own failure, the rest commit."""
    jobs = [tag(f"S{n:03d}") if n % 50 else explode for n in range(200)]
    results = await asyncio.gather(
        *(database.writer.submit(job) for job in jobs), return_exceptions=True
    )
    assert [isinstance(r, ValueError) for r in results] == [n % 50 == 0 for n in range(200)]
    async with database.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(IdTag))).scalar_one()
    assert total == 196
