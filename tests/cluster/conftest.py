"""Cluster tests need PostgreSQL and Mosquitto: a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cluster.nodes import Cluster, running_cluster
from tests.support import MOSQUITTO_UP, fresh_postgres_database, postgres_reachable


@pytest.fixture
async def cluster_db() -> AsyncIterator[str]:
    if not postgres_reachable() or not MOSQUITTO_UP:
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 and Mosquitto on 127.0.0.1:1883")
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def three_nodes(cluster_db: str) -> AsyncIterator[Cluster]:
    """Three `csms serve` processes in cluster mode, every partition held, a leader."""
    async with running_cluster(cluster_db) as cluster:
        yield cluster
