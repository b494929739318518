"""A schemathesis pass over the OpenAPI document of a live csms: no input gives a 5xx."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.app import Csms
from tests.support import API_TOKEN, MS, settings_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class LiveCsms:
    """csms on its own event loop in a thread, because schemathesis makes blocking calls."""

    def __init__(self, database: Path) -> None:
        self.app: Csms | None = None
        self._database = database
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="live-csms", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        # Webhook URLs it generates resolve to nothing: no DNS query leaves the machine.
        self.app = Csms(settings_for(f"sqlite+aiosqlite:///{self._database}"), resolve=_no_dns)
        waiter = asyncio.create_task(self._signal_ready())
        await self.app.run()
        waiter.cancel()

    async def _signal_ready(self) -> None:
        assert self.app is not None
        await self.app.ready.wait()
        self._ready.set()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(10_000 * MS), "csms did not start"
        assert self.app is not None
        return f"http://127.0.0.1:{self.app.api_port}"

    def __exit__(self, *_exc: object) -> None:
        assert self.app is not None
        self._loop.call_soon_threadsafe(self.app.stop)
        self._thread.join(10_000 * MS)


async def _no_dns(_host: str, _port: int) -> list[str]:
    return []


def test_no_input_gives_a_server_error(tmp_path: Path) -> None:
    """Whatever schemathesis sends (within the schema or not), the API never answers 5xx."""
    # 25 generated requests per operation, derandomized so that a failure reproduces.
    with LiveCsms(tmp_path / "csms.db") as base_url:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 20
        for operation in operations:
            _fuzz(operation.as_strategy(), base_url)


def _fuzz(strategy: st.SearchStrategy[schemathesis.Case], base_url: str) -> None:
    @given(case=strategy)
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=AUTH, timeout=10_000 * MS)
        # 502/504 are the charger's doing; no charger is connected here.
        assert response.status_code < 500, (case.as_curl_command(headers=AUTH), response.text)

    check()
