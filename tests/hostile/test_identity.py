"""Charger identities a URL path cannot carry, refused before the upgrade and by the API."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.core.identity import identity_from_path
from tests.support import MS, RunningCsms

UNSAFE = ["a%23b", "a%3Cb", "a%3Eb", "a%5Cb", "a%22b", "a%60b", "a%7Bb", "a%7Db"]


@pytest.mark.parametrize("raw", UNSAFE)
def test_unsafe_characters_are_not_an_identity(raw: str) -> None:
    """None of # < > backslash " ` { } can be in an identity, percent-encoded or not."""
    identity, problem = identity_from_path(f"/ocpp/{raw}")
    assert identity is None
    assert problem is not None
    assert not problem.startswith("not found")


def test_ocpp_alone_names_no_charger() -> None:
    """'/ocpp' is the prefix without an identity, not a charger called "ocpp"."""
    identity, problem = identity_from_path("/ocpp")
    assert identity is None
    assert problem is not None
    assert problem.startswith("not found")
    assert identity_from_path("/ocpp/ocpp") == ("ocpp", None)


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=["ocpp1.6"], open_timeout=10_000 * MS):  # type: ignore[list-item]
            pass
    return refused.value.response.status_code


@pytest.mark.parametrize(("suffix", "status"), [("/ocpp", 404), ("/ocpp/a%23b", 400)])
async def test_upgrade_refused_and_nothing_registered(
    csms: RunningCsms, suffix: str, status: int
) -> None:
    """The handshake is refused and no charge point is created."""
    root = csms.ocpp_url.removesuffix("/ocpp")
    assert await refused_status(root + suffix) == status
    async with csms.api() as api:
        assert (await api.get("/charge-points")).json()["total"] == 0


async def test_api_refuses_what_a_charger_could_not_use(csms: RunningCsms) -> None:
    """PUT /charge-points/{id} with an identity no charger URL can carry is a 422."""
    async with csms.api() as api:
        response = await api.put("/charge-points/a%3Cb", json={"name": "x"})
    assert response.status_code == 422, response.text
