"""Credit CDRs: a CDR already sent to a partner is cancelled by sending its negation.

OCPI 2.2.1 mod_cdrs §Credit CDRs: a CDR is never changed once sent; to cancel one the CPO
sends a Credit CDR with negative amounts, under a new id, like any other CDR.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.clock import format_utc
from csms.core.roaming import OcpiStatus, PushKind, credit_cdr
from csms.core.roaming_hub import PartyRef
from csms.errors import OcpiRequestError
from csms.events.models_base import to_json_dict
from csms.events.models_ocpi import Cdr
from csms.store import partners
from csms.store.db import Database


async def credit_sent_cdr(
    database: Database, *, partner_id: str, cdr_id: str, now: datetime
) -> dict[str, Any] | None:
    """Store and queue the Credit CDR of a partner's CDR; None when it has no such CDR.

    Raises:
        OcpiRequestError: the CDR is a credit itself, or was credited already (409).
    """

    async def job(session: AsyncSession) -> dict[str, Any] | None:
        original = await partners.get_cdr(session, partner_id=partner_id, cdr_id=cdr_id)
        if original is None:
            return None
        if original.data.get("credit"):
            raise OcpiRequestError(
                "a credit CDR cannot be credited",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=409,
            )
        credit_id = f"{cdr_id}-C"
        credit = to_json_dict(
            Cdr.model_validate_json(
                orjson.dumps(
                    credit_cdr(original.data, credit_id=credit_id, last_updated=format_utc(now))
                )
            )
        )
        # The credit is for the original's owner (through a hub: the token's party).
        owner = (
            None
            if original.owner_country_code is None or original.owner_party_id is None
            else PartyRef.of(original.owner_country_code, original.owner_party_id)
        )
        if not await partners.save_cdr(
            session,
            partner_id=partner_id,
            cdr_id=credit_id,
            data=credit,
            last_updated=now,
            owner=owner,
        ):
            raise OcpiRequestError(
                f"CDR {cdr_id} was credited already",
                ocpi_status=OcpiStatus.CLIENT_ERROR,
                http_status=409,
            )
        await partners.enqueue(
            session,
            partner_id=partner_id,
            key=f"cdr:{credit_id}",
            kind=PushKind.CDR_POST,
            body=credit,
            now=now,
            to=owner,
        )
        return credit

    credit: dict[str, Any] | None = await database.writer.submit(job)
    return credit
