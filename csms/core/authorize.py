"""Authorization decisions: an id tag record and the time in, an OCPP IdTagInfo out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from csms.core.clock import as_utc, format_utc


class AuthorizationStatus(StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


@dataclass(frozen=True)
class IdTagRecord:
    """An id tag as the operator registered it."""

    id_tag: str
    status: AuthorizationStatus
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class IdTagInfo:
    """What the charger is told about an id tag (OCPP 1.6 §7.24 IdTagInfo)."""

    status: AuthorizationStatus
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None

    def to_ocpp(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": self.status.value}
        if self.expiry_date is not None:
            info["expiryDate"] = format_utc(self.expiry_date)
        if self.parent_id_tag is not None:
            info["parentIdTag"] = self.parent_id_tag
        return info


def authorize(record: IdTagRecord | None, *, now: datetime) -> IdTagInfo:
    """Decide the IdTagInfo for a tag: unknown is Invalid, past its expiry is Expired."""
    if record is None:
        return IdTagInfo(status=AuthorizationStatus.INVALID)
    status = record.status
    if (
        status is AuthorizationStatus.ACCEPTED
        and record.expiry_date is not None
        and as_utc(record.expiry_date) <= as_utc(now)
    ):
        status = AuthorizationStatus.EXPIRED
    return IdTagInfo(
        status=status, expiry_date=record.expiry_date, parent_id_tag=record.parent_id_tag
    )
