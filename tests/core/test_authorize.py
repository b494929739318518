"""Authorization decisions from the id-tags table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.core.authorize import AuthorizationStatus as S
from csms.core.authorize import IdTagRecord, authorize

NOW = datetime(2025, 6, 1, tzinfo=UTC)
PAST = datetime(2025, 1, 1, tzinfo=UTC)
FUTURE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("record", "status", "ocpp"),
    [
        (None, S.INVALID, {"status": "Invalid"}),
        (IdTagRecord("A", S.ACCEPTED), S.ACCEPTED, {"status": "Accepted"}),
        (IdTagRecord("A", S.BLOCKED), S.BLOCKED, {"status": "Blocked"}),
        (IdTagRecord("A", S.INVALID), S.INVALID, {"status": "Invalid"}),
        (
            IdTagRecord("A", S.ACCEPTED, expiry_date=PAST),
            S.EXPIRED,
            {"status": "Expired", "expiryDate": "2025-01-01T00:00:00.000Z"},
        ),
        (
            IdTagRecord("A", S.ACCEPTED, expiry_date=FUTURE, parent_id_tag="P"),
            S.ACCEPTED,
            {"status": "Accepted", "expiryDate": "2026-01-01T00:00:00.000Z", "parentIdTag": "P"},
        ),
        (IdTagRecord("A", S.EXPIRED), S.EXPIRED, {"status": "Expired"}),
        (
            IdTagRecord("A", S.ACCEPTED, expiry_date=datetime(2025, 1, 1)),
            S.EXPIRED,
            {"status": "Expired", "expiryDate": "2025-01-01T00:00:00.000Z"},
        ),
    ],
)
def test_authorize(record: IdTagRecord | None, status: S, ocpp: dict[str, str]) -> None:
    """Unknown is Invalid; a past expiry turns Accepted into Expired; parent tag returned."""
    info = authorize(record, now=NOW)
    assert info.status is status
    assert info.to_ocpp() == ocpp
