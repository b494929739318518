"""Chargers: registration, boot, heartbeat, connection changes, status reports and the
messages kept as they came (DataTransfer, firmware/diagnostics/log status), each with the
events it causes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.charger import BootInfo, ConnectorStatusReport, SecurityEventFacts
from csms.core.events import Event
from csms.core.notifications import NetworkStatus
from csms.core.registration import RegistrationStatus
from csms.core.session import Party
from csms.events import build
from csms.store import chargers, outbox, security
from csms.store.db import BulkWrite, Database


class Ownership(Protocol):
    """Cluster mode: records the connection with its owning node (flows/cluster.py)."""

    async def connected(
        self, charge_point_id: str, *, write: BulkWrite, events: Sequence[Event], now: datetime
    ) -> None: ...

    async def disconnected(
        self, charge_point_id: str, *, write: BulkWrite, events: Sequence[Event], now: datetime
    ) -> None: ...


# What a status report mirrors onto the charge point, by action.
_STATUS_COLUMN = {
    "DiagnosticsStatusNotification": "diagnostics_status",
    "FirmwareStatusNotification": "firmware_status",
    # The same column as FirmwareStatusNotification: a charger uses one or the other
    # (SecWP L01.FR.20: a signed-firmware charger refuses UpdateFirmware).
    "SignedFirmwareStatusNotification": "firmware_status",
}


# `chargepoint.disconnected` reason for a connection the previous csms process lost.
LOST_AT_RESTART = "csms restarted"


class ChargerFlows:
    """Every change a charger's own messages and its connection make, with its events."""

    def __init__(self, *, database: Database, party: Party) -> None:
        self._database = database
        self._writer = database.writer
        self.party = party
        # Cluster mode: connections are recorded with their owner (flows/cluster.py).
        self.ownership: Ownership | None = None

    async def register(
        self,
        *,
        charge_point_id: str,
        now: datetime,
        registration: RegistrationStatus = RegistrationStatus.ACCEPTED,
    ) -> None:
        """First contact of an unknown charger allowed in: create it, accepted or pending
        as `ocpp.unknown_chargers` says."""
        await self._writer.submit_bulk(
            chargers.registration(
                charge_point_id=charge_point_id, now=now, registration_status=registration.value
            )
        )

    async def password_upgraded(
        self, *, charge_point_id: str, old_hash: str, new_hash: str
    ) -> None:
        """A login proved the password: keep it under the current scheme (contract v1.1)."""
        await self._writer.submit_bulk(
            chargers.password_upgrade(
                charge_point_id=charge_point_id, old_hash=old_hash, new_hash=new_hash
            )
        )

    async def put(self, *, charge_point_id: str, values: dict[str, Any], now: datetime) -> bool:
        """Register or update a charge point (the API); True when it was created. A new one
        is published as network status `never_connected` until it first connects."""

        async def job(session: AsyncSession) -> bool:
            created = await chargers.upsert_charge_point(
                session, charge_point_id=charge_point_id, values=values, now=now
            )
            if created:
                status = NetworkStatus.NEVER_CONNECTED.value
                event = build.network_status(charge_point_id, at=now, status=status)
                await outbox.add_events(session, [event], now=now)
            return created

        created: bool = await self._writer.submit(job)
        return created

    async def decide_registration(
        self,
        *,
        charge_point_id: str,
        status: RegistrationStatus,
        decided_by: str | None,
        now: datetime,
    ) -> bool:
        """The operator's decision on a charger (OCPP 1.6 §4.2; docs/ocpp.md, "Unknown
        chargers"), and `chargepoint.registration_status` when it changes what the charger
        had, in one transaction. False when the charger does not exist."""

        async def job(session: AsyncSession) -> bool:
            previous = await chargers.get_registration_status(session, charge_point_id)
            if previous is None:
                return False
            await chargers.set_registration_status(
                session, charge_point_id=charge_point_id, status=status.value, now=now
            )
            if previous != status.value:
                event = build.registration_status(
                    charge_point_id,
                    at=now,
                    status=status.value,
                    previous=previous,
                    decided_by=decided_by,
                )
                await outbox.add_events(session, [event], now=now)
            return True

        found: bool = await self._writer.submit(job)
        return found

    async def raise_profile(self, *, charge_point_id: str, profile: int, now: datetime) -> None:
        """SecWP A05.FR.09: once a charger connected at a higher profile, it may not come
        back lower."""
        await self._writer.submit(
            partial(
                chargers.upsert_charge_point,
                charge_point_id=charge_point_id,
                values={"security_profile": profile},
                now=now,
            )
        )

    async def connected(
        self, *, charge_point_id: str, remote_address: str | None, now: datetime
    ) -> None:
        """`chargepoint.connected` and network status `available`."""
        events = [
            build.connected(charge_point_id, at=now, remote_address=remote_address),
            build.network_status(charge_point_id, at=now, status="available"),
        ]
        write = chargers.connection_change(charge_point_id=charge_point_id, connected=True, now=now)
        if self.ownership is not None:
            await self.ownership.connected(charge_point_id, write=write, events=events, now=now)
            return
        await self._writer.submit_bulk(outbox.with_events(write, events, now=now))

    async def disconnected(
        self, *, charge_point_id: str, reason: str | None, now: datetime
    ) -> None:
        """`chargepoint.disconnected` and network status `temporarily_unavailable`."""
        events = [
            build.disconnected(charge_point_id, at=now, reason=reason),
            build.network_status(charge_point_id, at=now, status="temporarily_unavailable"),
        ]
        write = chargers.connection_change(
            charge_point_id=charge_point_id, connected=False, now=now
        )
        if self.ownership is not None:
            # A newer connection elsewhere makes this late cleanup change nothing.
            await self.ownership.disconnected(charge_point_id, write=write, events=events, now=now)
            return
        await self._writer.submit_bulk(outbox.with_events(write, events, now=now))

    async def end_lost_connections(
        self, *, now: datetime, only: Sequence[str] | None = None
    ) -> int:
        """At start-up: chargers connected to a previous process that ended without closing
        them (a crash) are disconnected as of when they were last seen, with the events of a
        disconnect. Returns how many. `only` limits it to those chargers (cluster mode)."""

        async def job(session: AsyncSession) -> int:
            lost = await chargers.end_lost_connections(session, only=only)
            events: list[Event] = []
            for charger in lost:
                assert charger.disconnected_at is not None
                at = charger.disconnected_at
                events += [
                    build.disconnected(charger.id, at=at, reason=LOST_AT_RESTART),
                    build.network_status(charger.id, at=at, status="temporarily_unavailable"),
                ]
            await outbox.add_events(session, events, now=now)
            return len(lost)

        count: int = await self._writer.submit(job)
        return count

    async def booted(
        self,
        *,
        charge_point_id: str,
        info: BootInfo,
        now: datetime,
        registration: RegistrationStatus = RegistrationStatus.ACCEPTED,
    ) -> RegistrationStatus:
        """A BootNotification: what the charger says of itself, `chargepoint.booted`, and
        how it is answered (OCPP 1.6 §4.2).

        `registration` is the decision known when the charger connected. An accepted
        charger is answered from it, with no read; for any other the decision is read
        again, since an operator may have accepted the charger since.
        """
        status = registration
        if status is not RegistrationStatus.ACCEPTED:
            current = await self._database.read(
                lambda session: chargers.get_registration_status(session, charge_point_id)
            )
            status = RegistrationStatus(current) if current else status
        write = chargers.boot(
            charge_point_id=charge_point_id, info=info, now=now, boot_status=status.boot_status
        )
        event = build.booted(charge_point_id, at=now, info=info, boot_status=status.boot_status)
        await self._writer.submit_bulk(outbox.with_events(write, [event], now=now))
        return status

    async def seen(self, *, charge_point_id: str, now: datetime) -> None:
        """The charger was heard from (Heartbeat)."""
        await self._writer.submit_bulk(chargers.seen(charge_point_id=charge_point_id, now=now))

    async def connector_status(
        self, *, charge_point_id: str, report: ConnectorStatusReport, now: datetime
    ) -> None:
        """A StatusNotification; `evse.status` for an EVSE (not for connector 0)."""
        write = chargers.connector_status(charge_point_id=charge_point_id, report=report, now=now)
        if report.is_evse:
            event = build.evse_status(
                charge_point_id,
                party=self.party,
                connector_id=report.connector_id,
                ocpp_status=report.status,
                error_code=report.error_code,
                info=report.info,
                vendor_error_code=report.vendor_error_code,
                vendor_error_text=None,
                online=True,
                at=report.timestamp,
            )
            write = outbox.with_events(write, [event], now=now)
        await self._writer.submit_bulk(write)

    async def message(
        self,
        *,
        charge_point_id: str,
        action: str,
        payload: dict[str, Any],
        now: datetime,
        status: str | None = None,
    ) -> None:
        """Keep a message as it came; a status it reports is mirrored onto the charger."""
        column = _STATUS_COLUMN.get(action)
        mirrored = (column, status) if column is not None and status is not None else None
        write = chargers.charger_message(
            charge_point_id=charge_point_id,
            action=action,
            payload=payload,
            now=now,
            status=mirrored,
        )
        await self._writer.submit_bulk(write)

    async def log_status(
        self, *, charge_point_id: str, payload: dict[str, Any], status: str, now: datetime
    ) -> None:
        """A LogStatusNotification (SecWP N01): kept, and its status on the charger."""
        await self._writer.submit_bulk(
            security.log_status(
                charge_point_id=charge_point_id, payload=payload, status=status, now=now
            )
        )

    async def security_event(self, facts: SecurityEventFacts, *, now: datetime) -> None:
        """Keep a security event and publish it as `security.event`, together."""
        write = security.security_event(facts, now=now)
        await self._writer.submit_bulk(
            outbox.with_events(write, [build.security_event(facts)], now=now)
        )

    async def certificate_issued(
        self,
        *,
        charge_point_id: str,
        serial_number: str,
        subject: str,
        not_before: datetime,
        not_after: datetime,
        pem: str,
        now: datetime,
    ) -> None:
        """Keep a certificate csms signed for a charger (before the charger is told)."""
        await self._writer.submit_bulk(
            security.issued_certificate(
                charge_point_id=charge_point_id,
                serial_number=serial_number,
                subject=subject,
                not_before=not_before,
                not_after=not_after,
                pem=pem,
                now=now,
            )
        )

    async def serial_numbers(self, charge_point_id: str) -> tuple[str, ...]:
        """The serial numbers the charger gave in its BootNotification (SecWP A00.FR.405)."""
        row = await self._database.read(
            lambda session: chargers.get_charge_point(session, charge_point_id)
        )
        if row is None:
            return ()
        return tuple(s for s in (row.charge_box_serial_number, row.serial_number) if s)
