"""Tariff versions parsed once per process (csms.flows.tariffs.SessionPricing.parsed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csms.core.tariff_ocpi import tariff_from_ocpi
from csms.core.usage import limits_of
from csms.flows.tariffs import MAX_PARSED, SessionPricing
from csms.store.db import Database
from tests.session_flows import PARTY


def _tariff(price: float) -> dict[str, Any]:
    return {
        "id": "T1",
        "currency": "EUR",
        "country_code": "BE",
        "party_id": "BEC",
        "last_updated": "2026-01-01T00:00:00Z",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": price, "step_size": 1}],
                "restrictions": {"max_power": 11.0},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.45, "step_size": 1}]},
        ],
    }


async def test_a_version_is_parsed_once_and_again_only_when_its_data_differs(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")
    try:
        pricing = SessionPricing(database=database, party=PARTY)
        data = _tariff(0.30)
        tariff, limits = pricing.parsed("T1", 1, data)
        assert (tariff, limits) == (tariff_from_ocpi(data), limits_of(tariff_from_ocpi(data)))
        # The same version again, read anew from the database: the same parse.
        assert pricing.parsed("T1", 1, _tariff(0.30))[0] is tariff
        # Other data under the same key is never priced with the former parse.
        other, _ = pricing.parsed("T1", 1, _tariff(0.50))
        assert other == tariff_from_ocpi(_tariff(0.50))
        assert other != tariff
        # Bounded: the oldest versions are dropped, and parsed again when asked for.
        for version in range(2, MAX_PARSED + 3):
            pricing.parsed("T1", version, data)
        assert pricing.parsed("T1", 1, data)[0] == tariff
    finally:
        await database.dispose()
