"""Fixtures: a real csms per test on free ports, with a fresh SQLite or PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from csms.store.db import Database
from tests import support
from tests.ocpi_partner import FakeEmsp, ocpi_settings, running_emsp
from tests.support import (
    MOSQUITTO_UP,
    TRANSPORTS,
    RunningCsms,
    fresh_postgres_database,
    postgres_reachable,
    running_csms,
    settings_for,
    writing,
)

_REQUIRE_POSTGRES = os.environ.get("CSMS_TEST_REQUIRE_POSTGRES") == "1"
_postgres_state: dict[str, bool] = {}


def _postgres_up() -> bool:
    if "up" not in _postgres_state:
        _postgres_state["up"] = postgres_reachable()
    return _postgres_state["up"]


def pytest_report_header() -> list[str]:
    broker = (
        "mqtt: Mosquitto on 127.0.0.1:1883, a topic prefix per test"
        if MOSQUITTO_UP
        else "mqtt: no Mosquitto on 127.0.0.1:1883; each csms embeds an amqtt broker"
    )
    if _postgres_up():
        return [
            "postgresql: reachable at 127.0.0.1:5432; @pytest.mark.postgres tests run on both",
            broker,
        ]
    verdict = "FAILING those tests (CI)" if _REQUIRE_POSTGRES else "SKIPPING their pg variants"
    return [f"postgresql: NOT reachable at 127.0.0.1:5432; {verdict}", broker]


# Where the tests run on both WebSocket transports (ocpp.transport): every test here that
# starts a csms talks OCPP-J to it (docs/development.md).
_BOTH_TRANSPORTS = ("ocpp16", "hostile")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport" in metafunc.fixturenames and _on_both_transports(metafunc):
        metafunc.parametrize("transport", TRANSPORTS, indirect=True)
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker
    if marker("postgres_only"):
        backends = ["postgres"]
    elif marker("postgres"):
        backends = ["sqlite", "postgres"]
    else:
        backends = ["sqlite"]
    metafunc.parametrize("backend", backends)


def _on_both_transports(metafunc: pytest.Metafunc) -> bool:
    tests = Path(__file__).parent
    relative = metafunc.definition.path.relative_to(tests)
    return relative.parts[0] in _BOTH_TRANSPORTS


@pytest.fixture(autouse=True)
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """The WebSocket layer of the csms the test starts: both, where the tests speak OCPP."""
    name: str = getattr(request, "param", "websockets")
    support.TRANSPORT = name
    try:
        yield name
    finally:
        support.TRANSPORT = "websockets"


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of the requested backend."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"
        return
    if not _postgres_up():
        if _REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL is required (CSMS_TEST_REQUIRE_POSTGRES=1) but not reachable")
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database with its writer running (a module may define its own)."""
    async with writing(Database(database_url)) as db:
        yield db


@pytest.fixture
async def csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A real csms on free ports, unknown chargers allowed, fresh database."""
    async with running_csms(settings_for(database_url)) as running:
        yield running


@pytest.fixture
async def roaming(database_url: str) -> AsyncIterator[RunningCsms]:
    """A real csms with its OCPI listener on (docs/ocpi.md), fresh database."""
    async with running_csms(settings_for(database_url, ocpi=ocpi_settings())) as running:
        yield running


@pytest.fixture
async def emsp() -> AsyncIterator[FakeEmsp]:
    """A test eMSP (tests/ocpi_partner.py) on a free port."""
    async with running_emsp() as partner:
        yield partner
