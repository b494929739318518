"""The WebSocket handshake: paths, identities, subprotocol and the unknown-charger policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import MS, RunningCsms, connection_seen, running_csms, settings_for


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS):  # type: ignore[list-item]
            pass
    return refused.value.response.status_code


async def charge_point_total(csms: RunningCsms) -> int:
    async with csms.api() as api:
        total: int = (await api.get("/charge-points")).json()["total"]
    return total


@pytest.fixture
async def strict_csms(database_url: str) -> AsyncIterator[RunningCsms]:
    """A csms that refuses unknown chargers."""
    settings = settings_for(database_url, allow_unknown_chargers=False)
    async with running_csms(settings) as running:
        yield running


async def test_unknown_charger_gets_404_when_not_allowed(strict_csms: RunningCsms) -> None:
    """An unknown identity gets HTTP 404 before the upgrade; nothing is created."""
    assert await refused_status(f"{strict_csms.ocpp_url}/UNKNOWN1") == 404
    assert await charge_point_total(strict_csms) == 0


async def test_registered_charger_is_admitted_when_unknown_are_refused(
    strict_csms: RunningCsms,
) -> None:
    """A charger registered through the API connects even when unknown ones are refused."""
    async with strict_csms.api() as api:
        assert (await api.put("/charge-points/KNOWN-1", json={"name": "bay 1"})).status_code == 201
    async with strict_csms.charger("KNOWN-1") as cp:
        assert (await cp.call("Heartbeat", {}))["currentTime"].endswith("Z")


async def test_unknown_charger_is_registered_on_first_contact(csms: RunningCsms) -> None:
    """With allow_unknown_chargers, first contact registers the charger."""
    async with connection_seen(csms, "NEW-1"), csms.charger("NEW-1", boot=False):
        pass
    async with csms.api() as api:
        body = (await api.get("/charge-points/NEW-1")).json()
    assert body["id"] == "NEW-1"
    assert body["bootStatus"] is None


@pytest.mark.parametrize("offered", [None, ["ocpp1.5"]])
async def test_missing_subprotocol_completes_handshake_then_closes(
    csms: RunningCsms, offered: list[str] | None
) -> None:
    """Without ocpp1.6 offered, the handshake completes with no header, then closes."""
    async with connect(
        f"{csms.ocpp_url}/CP-NOPROTO", subprotocols=offered, open_timeout=10_000 * MS
    ) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol is None
        assert ws.response is not None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        async with asyncio.timeout(10_000 * MS):
            await ws.wait_closed()
        assert ws.close_code == 1002


async def test_ocpp16_is_selected_among_several(csms: RunningCsms) -> None:
    """Offered 'ocpp2.0.1, ocpp1.6', the server selects and echoes ocpp1.6 only."""
    async with connect(
        f"{csms.ocpp_url}/CP-MULTI",
        subprotocols=["ocpp2.0.1", "ocpp1.6"],  # type: ignore[list-item]
        open_timeout=10_000 * MS,
    ) as ws:
        assert ws.subprotocol == "ocpp1.6"
        assert ws.response is not None
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"


async def test_identity_is_percent_decoded_on_both_paths(csms: RunningCsms) -> None:
    """'/ocpp/{id}' and '/{id}' both work, with the identity percent-decoded."""
    root = csms.ocpp_url.removesuffix("/ocpp")
    async with csms.charger(path=f"{root}/ocpp/CP%2DPCT"):
        pass
    async with csms.charger(path=f"{root}/CP-ROOT"):
        pass
    async with csms.api() as api:
        assert (await api.get("/charge-points/CP-PCT")).status_code == 200
        assert (await api.get("/charge-points/CP-ROOT")).status_code == 200


@pytest.mark.parametrize(
    ("suffix", "status"),
    [
        ("/ocpp/" + "A" * 49, 400),
        ("/ocpp/" + "A" * 256, 400),
        ("/ocpp/a%2Fb", 400),
        ("/ocpp/..", 400),
        ("/ocpp/a%00b", 400),
        ("/ocpp/a%0Db", 400),
        ("/ocpp/RDAM%20123", 400),
        ("/ocpp/", 400),
        ("/a/b/c", 404),
        ("/other/CP1", 404),
    ],
)
async def test_malformed_identities_are_refused(
    csms: RunningCsms, suffix: str, status: int
) -> None:
    """Malformed identities get 400, unknown paths 404, and no state is created."""
    root = csms.ocpp_url.removesuffix("/ocpp")
    assert await refused_status(root + suffix) == status
    assert await charge_point_total(csms) == 0
