"""The balancer's safe default per charger: a TxDefaultProfile at the circuit's safe share
(docs/load-balancing.md, "Profiles the balancer sends"), on connector 0 or, for chargers
that reject it there, on each member connector, retried with backoff until taken.

Part of the balancer (csms.flows.balancing), which calls `install` at each pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from csms.core.balancing import Caps, retry_after_s, safe_default_profile
from csms.errors import CommandError, CommandRejected
from csms.flows.circuits import SMART_KEYS, BalancerSnapshot
from csms.flows.commands import BALANCER, Commands

log = structlog.get_logger("csms.balancing")

REQUESTED_BY = BALANCER


class SafeDefaults:
    """Which chargers need their safe default, and sending it."""

    def __init__(
        self,
        *,
        commands: Commands,
        clock: Callable[[], datetime],
        retry_s: float,
        wake: Callable[[str], None],
        count: Callable[[str, str], None],
    ) -> None:
        self._commands = commands
        self._clock = clock
        self._retry_s = retry_s
        self._wake = wake  # asks for a pass on the charger's circuits
        self._count = count  # (kind, outcome) of a profile sent, for metrics
        self._due: set[str] = set()  # chargers whose safe default may be due
        self._booted: set[str] = set()  # ... and those that lost it (they booted)
        # Not taken: (attempts, not before), and the retries' timers.
        self._retries: dict[str, tuple[int, datetime]] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._per_connector: set[str] = set()  # chargers that reject it on connector 0

    def due(self, cp: str) -> None:
        """Check the charger's safe default at the next pass (connect, boot, an edit); a
        charger that is back is tried at once."""
        self._due.add(cp)
        self._retries.pop(cp, None)

    def lost(self, cp: str) -> None:
        """The charger booted: it holds no profile, whatever the store says."""
        self._booted.add(cp)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()

    async def install(self, snap: BalancerSnapshot, *, online: Mapping[str, object]) -> None:
        """Send the safe defaults due on the snapshot's online members."""
        for cp in sorted({key[0] for key in snap.members} & self._due):
            if cp in online:
                self._due.discard(cp)
                await self._install_default(cp, snap)

    async def _install_default(self, cp: str, snap: BalancerSnapshot) -> None:
        """The safe TxDefaultProfile (OCPP 1.6 §3.13.2: it governs every new session, and
        offline operation), retried with backoff until the charger holds it."""
        if not any(c == cp for c, _ in snap.shares):
            return
        now = self._clock()
        attempt, not_before = self._retries.get(cp, (0, now))
        if now < not_before:
            self._due.add(cp)  # still due: its timer asks for a pass
            return
        if cp not in snap.probed:
            await self._probe(cp, snap)
        booted = cp in self._booted
        self._booted.discard(cp)
        if await self._send_defaults(cp, snap, booted=booted):
            self._retries.pop(cp, None)
            return
        attempt += 1
        delay = retry_after_s(attempt, base_s=self._retry_s)
        self._retries[cp] = (attempt, now + timedelta(seconds=delay))
        self._due.add(cp)
        if booted:
            self._booted.add(cp)  # it still lacks it: an equal stored one does not count
        timer = asyncio.get_running_loop().call_later(delay, self._wake, cp)
        self._timers.append(timer)
        log.warning("balancer_default_retry", charge_point_id=cp, attempt=attempt, delay=delay)

    async def _send_defaults(self, cp: str, snap: BalancerSnapshot, *, booted: bool) -> bool:
        """One safe default on connector 0, or one per member connector when the charger
        rejects connector 0 (ev-server ChargingStationVendorIntegration.setChargingProfile
        does the same); True when the charger holds them all."""
        learned = cp in self._per_connector or any(c == cp and k for c, k in snap.defaults)
        if not learned:
            status = await self._send_default(cp, 0, snap, booted=booted)
            if status != "Rejected":
                return status == "Accepted"
            log.info("balancer_default_per_connector", charge_point_id=cp)
            self._per_connector.add(cp)
        count = max(snap.connectors.get(cp, 1), 1)
        whole = (cp, 0) in snap.members
        connectors = [k for k in range(1, count + 1) if whole or (cp, k) in snap.members]
        statuses = [await self._send_default(cp, k, snap, booted=booted) for k in connectors]
        return all(status == "Accepted" for status in statuses)

    async def _send_default(
        self, cp: str, connector: int, snap: BalancerSnapshot, *, booted: bool
    ) -> str | None:
        """ "Accepted", "Rejected" (a CALLERROR too) or None (no answer)."""
        mine = {k: m for (c, k), m in snap.members.items() if c == cp}
        member = mine.get(connector) or mine.get(0) or next(iter(mine.values()))
        shares = [v for (c, k), v in snap.shares.items() if c == cp]
        share = snap.shares[cp, member.connector_id] if connector else min(shares)
        payload = safe_default_profile(
            safe_da=share,
            caps=snap.caps.get(cp, Caps()),
            phases=member.phases,
            connector_id=connector,
        )
        if not booted and snap.defaults.get((cp, connector)) == payload["csChargingProfiles"]:
            return "Accepted"  # never re-send a profile equal to the one the charger holds
        try:
            result = await self._commands.run(
                cp, "SetChargingProfile", payload, requested_by=REQUESTED_BY
            )
        except CommandRejected:
            self._count("default", "rejected")
            return "Rejected"
        except CommandError as exc:
            log.info("balancer_default_not_sent", charge_point_id=cp, error=str(exc))
            self._count("default", "unknown")
            return None
        if result.response.get("status") != "Accepted":
            log.warning("balancer_default_rejected", charge_point_id=cp, connector_id=connector)
            self._count("default", "rejected")
            return "Rejected"
        self._count("default", "accepted")
        return "Accepted"

    async def _probe(self, cp: str, snap: BalancerSnapshot) -> None:
        """Read the charger's smart-charging limits (OCPP 1.6 §9.4) once; the answer is kept
        with its configuration like any GetConfiguration."""
        try:
            result = await self._commands.run(
                cp, "GetConfiguration", {"key": list(SMART_KEYS)}, requested_by=REQUESTED_BY
            )
        except CommandError as exc:
            log.info("balancer_probe_failed", charge_point_id=cp, error=str(exc))
            return
        values = {
            item["key"]: item.get("value") for item in result.response.get("configurationKey", [])
        }
        snap.caps[cp] = Caps.from_configuration(values)
