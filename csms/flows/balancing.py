"""The balancer: one coalesced pass per root circuit, profiles sent decreases first, the safe
default at boot and reconnect, leases, and what it learns per charger
(docs/load-balancing.md).

Triggers come from the events csms publishes (session start and stop, status, meter values,
connect, disconnect, boot), from circuit edits and from a periodic tick. Each root circuit
has one worker task: a trigger marks the root dirty, the worker waits `coalesce` seconds
to take the triggers that follow with it, reads a snapshot, runs the pure allocator and
sends what changed. Decisions are in `csms.core.balancing` and `csms.core.allocator`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.config import BalancingSettings
from csms.core.allocator import ConnectorKey, Grant, Reason, allocate, violations
from csms.core.balancing import (
    Applied,
    BalancerPolicy,
    Caps,
    Change,
    ChangeKind,
    Draw,
    IdleTracker,
    Strategy,
    next_rung,
    overdraws,
    plan,
    rotation,
    tx_profile,
)
from csms.core.circuits import (
    MemberSpec,
    SessionView,
    deci_down,
    demands_of,
    member_for,
    nodes_of,
    root_of,
    safe_shares,
)
from csms.core.events import Event
from csms.errors import CommandError, CommandRejected, CommandTimeout, CsmsError
from csms.events.circuits import circuit_allocation, member_uncontrollable
from csms.events.fanout import EventFanout, LiveEvent
from csms.flows.balancing_defaults import SafeDefaults
from csms.flows.circuits import (
    BalancerSnapshot,
    keep_recounted,
    read_snapshot,
    read_trees,
    recounted,
    spec_of,
)
from csms.flows.commands import BALANCER, Commands
from csms.metrics import Metrics
from csms.store import circuits, outbox
from csms.store.db import Database
from csms.store.tables import CircuitAllocation

log = structlog.get_logger("csms.balancing")

REQUESTED_BY = BALANCER
_TRIGGERS = frozenset(
    {
        "session.started",
        "session.stopped",
        "evse.status",
        "chargepoint.connected",
        "chargepoint.disconnected",
        "chargepoint.booted",
    }
)
# Every event type the balancer follows: its triggers and the meter values it reads.
FOLLOWED_EVENTS = (*sorted(_TRIGGERS), "meter.values")
# A change of draw worth a pass (docs/load-balancing.md, "Triggers").
_SIGNIFICANT_DA = 10


@dataclass
class _Draw:
    """The last per-phase current a connector's meter reported."""

    phases_da: tuple[int, ...]
    at: datetime
    over: int = 0


class Balancer:
    """Runs the passes; `wake` is how circuit edits and tests ask for one."""

    def __init__(
        self,
        *,
        database: Database,
        commands: Commands,
        online: Mapping[str, object],
        fanout: EventFanout,
        clock: Callable[[], datetime],
        settings: BalancingSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self._database = database
        self._commands = commands
        # The chargers it may send profiles to (cluster mode: connected to any node).
        self.online = online
        self._fanout = fanout
        self._clock = clock
        self._settings = settings
        self.policy = BalancerPolicy(
            increase_min_da=deci_down(settings.increase_min),
            increase_hold_s=settings.increase_hold,
            resume_hold_s=settings.resume_hold,
            lease_s=settings.lease,
            renew_before_s=settings.renew_before,
        )
        self._dirty: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._roots_of: dict[str, set[str]] = {}  # charge point -> its root circuits
        self._draws: dict[ConnectorKey, _Draw] = {}
        # The limit each connector accepted, and since when: meter values are checked
        # against it as they come (docs/load-balancing.md, "Safety").
        self._limits: dict[ConnectorKey, tuple[int, datetime]] = {}
        self._metrics = metrics or Metrics()
        self._controlled: dict[str, int] = {}  # root -> sessions it controls, for metrics
        self._metrics.watch(
            self._metrics.balancer_connectors, lambda: sum(self._controlled.values())
        )
        self._defaults = SafeDefaults(
            commands=commands,
            clock=clock,
            retry_s=settings.default_retry,
            wake=self._wake_charger,
            count=self._count,
        )
        self._idle = IdleTracker(idle_after_s=settings.idle_after)
        # More event streams to follow besides `fanout`: in cluster mode, the events of the
        # partitions other nodes publish (docs/deployment.md, "The balancer in cluster mode").
        self.feeds: list[EventFanout] = []
        self.passes = 0  # completed passes, for tests and metrics
        self._passed = asyncio.Condition()

    # -- triggers --

    def wake(self, _circuit_ids: Sequence[str] | None = None) -> None:
        """Ask for a pass on every root after an edit: the trees are read again first (an
        edit can move a circuit to another root), then each root gets its pass."""
        self._mark("")

    def _mark(self, root: str) -> None:
        event = self._dirty.get(root)
        if event is None:
            event = self._dirty[root] = asyncio.Event()
            self._workers[root] = asyncio.get_running_loop().create_task(
                self._worker(root), name=f"balancer-{root or 'trees'}"
            )
        event.set()

    async def run(self) -> None:
        """Follow the event stream and tick until cancelled."""
        self.wake()
        ticker = asyncio.create_task(self._tick(), name="balancer-tick")
        followers = [
            asyncio.create_task(self._follow(fanout), name="balancer-follow")
            for fanout in self.feeds
        ]
        try:
            await self._follow(self._fanout)
        finally:
            for follower in followers:
                follower.cancel()
            ticker.cancel()
            self._defaults.close()
            for task in self._workers.values():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(
                    ticker, *followers, *self._workers.values(), return_exceptions=True
                )

    async def _follow(self, fanout: EventFanout) -> None:
        while True:
            with fanout.subscribe() as subscription:
                while True:
                    event = await subscription.queue.get()
                    if event is None:
                        break
                    self._on_event(event)
            # Fell behind or the stream ended: resubscribe, and look at everything.
            self.wake()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._settings.tick)
            self.wake()

    def _on_event(self, event: LiveEvent) -> None:
        roots = self._roots_of.get(event.charge_point_id)
        if not roots:
            return
        if event.type in ("chargepoint.booted", "chargepoint.connected"):
            self._defaults.due(event.charge_point_id)
        if event.type == "chargepoint.booted":
            self._defaults.lost(event.charge_point_id)
        if event.type == "evse.status":
            data = orjson.loads(event.payload).get("data", {})
            key = (event.charge_point_id, int(data.get("connectorId", 0)))
            status = str(data.get("ocppStatus") or "")
            self._idle.on_status(key, status=status, now=self._clock())
        if event.type == "meter.values":
            if not self._meter(event):
                return
        elif event.type not in _TRIGGERS:
            return
        for root in roots:
            self._mark(root)

    def _meter(self, event: LiveEvent) -> bool:
        """Keep the per-phase current; True when it moved enough for a pass."""
        data = orjson.loads(event.payload).get("data", {})
        key = (event.charge_point_id, int(data.get("connectorId", 0)))
        currents: dict[str, int] = {}
        for sample in data.get("sampledValues", []):
            if sample.get("measurand") != "Current.Import":
                continue
            # Without a phase the value is taken for every phase: the car's phases stay
            # unknown (the member's are assumed), never fewer than it really uses.
            phase = str(sample.get("phase") or "")[:2]
            with contextlib.suppress(ValueError, TypeError):
                amps = deci_down(float(sample["value"]))
                for each in (phase,) if phase in ("L1", "L2", "L3") else ("L1", "L2", "L3"):
                    currents[each] = amps
        if not currents:
            return False
        phases = tuple(currents.get(p, 0) for p in ("L1", "L2", "L3"))
        before = self._draws.get(key)
        draw = self._draws[key] = _Draw(phases, self._clock(), before.over if before else 0)
        if self._idle.on_draw(key, phases_da=phases, now=draw.at):
            return True  # became idle or busy: its slot may go to another car
        if self._overdrawn(key, draw) and draw.over == 2:
            return True  # a pass counts it at its draw from now on
        if before is None:
            return True
        moved = max(abs(a - b) for a, b in zip(phases, before.phases_da, strict=True))
        used = sum(1 for p in phases if p > _SIGNIFICANT_DA)
        was = sum(1 for p in before.phases_da if p > _SIGNIFICANT_DA)
        return moved > _SIGNIFICANT_DA or used != was

    async def wait_passes(self, count: int) -> None:
        """Wait until `count` passes have completed (tests)."""
        async with self._passed:
            await self._passed.wait_for(lambda: self.passes >= count)

    # -- the workers --

    async def _worker(self, root: str) -> None:
        dirty = self._dirty[root]
        while True:
            await dirty.wait()
            await asyncio.sleep(self._settings.coalesce)
            dirty.clear()
            try:
                if root == "":
                    await self._refresh_trees()
                else:
                    await self._pass(root)
            except CsmsError as exc:
                log.warning("balancer_pass_failed", root=root, error=str(exc))
            async with self._passed:
                self.passes += 1
                self._passed.notify_all()

    async def _refresh_trees(self) -> None:
        rows, members = await self._database.read(read_trees)
        specs = {row.id: spec_of(row) for row in rows}
        roots_of: dict[str, set[str]] = {}
        for m in members:
            if m.circuit_id in specs:
                roots_of.setdefault(m.charge_point_id, set()).add(root_of(specs, m.circuit_id))
        self._roots_of = roots_of
        # An edit may change the safe share: each member is checked (equal ones are skipped).
        for cp in roots_of:
            self._defaults.due(cp)
        for root in {root_of(specs, cid) for cid in specs if specs[cid].parent_id is None}:
            self._mark(root)

    async def _pass(self, root: str) -> None:
        now = self._clock()
        snap = await self._database.read(lambda s: read_snapshot(s, root))
        if snap is None:
            self._controlled.pop(root, None)
            return
        self._limits = {
            key: (deci_down(row.limit_a), row.changed_at or now)
            for key, row in snap.applied.items()
            if row.status == "accepted"
        }
        snap.shares = safe_shares(
            list(snap.circuits.values()), list(snap.members.values()), connectors=snap.connectors
        )
        await self._defaults.install(snap, online=self.online)
        await self._find_overdraws(snap, now)
        views, stale = self._views(snap, now)
        nodes = nodes_of(list(snap.circuits.values()), list(snap.members.values()))
        demands = demands_of(views, snap.members, integer_amps=None)
        snap.phases = {d.key: len(d.phases) for d in demands}
        grants = allocate(nodes, demands)
        broken = violations(nodes, demands, grants)
        if broken:
            # docs/load-balancing.md, "Safety": send nothing new, keep the last limits.
            log.error("balancer_invariant_broken", root=root, violations=len(broken))
            return
        controlled = [d.key for d in demands if d.fixed_da is None]
        self._controlled[root] = len(controlled)
        applied = {
            key: Applied(deci_down(row.limit_a), row.changed_at or now, row.lease_until)
            for key, row in snap.applied.items()
            if key in set(controlled) and row.status == "accepted"
        }
        changes = plan(grants, applied, now=now, policy=self.policy, controlled=controlled)
        unknown = [
            Change(key, deci_down(row.limit_a), deci_down(row.limit_a), ChangeKind.RENEW, grant)
            for key, row in snap.applied.items()
            if row.status != "accepted"
            and (grant := grants.get(key)) is not None
            and grant.reason is Reason.FIXED
            and key[0] in self.online
            and snap.strategy.get(key[0]) is not Strategy.UNCONTROLLABLE
        ]
        ended = [key for key in snap.applied if key not in {v.key for v in views}]
        if ended:
            await self._database.writer.submit(lambda s: circuits.drop_allocations(s, ended))
        sending = {c.key for c in (*changes.decreases, *changes.increases, *unknown)}
        if recount := recounted(snap, sending=sending, now=now):
            await self._database.writer.submit(partial(keep_recounted, recount=recount, now=now))
        failed = await self._send(changes.decreases, snap, root, now)
        increases = changes.increases + tuple(unknown)
        if stale:
            # A stale meter freezes increases (docs/load-balancing.md, "Safety").
            increases = tuple(c for c in increases if c.kind is ChangeKind.RENEW)
        if failed:
            increases = ()
            self._mark(root)
        await self._send(increases, snap, root, now)

    def _views(self, snap: BalancerSnapshot, now: datetime) -> tuple[list[SessionView], bool]:
        """A view per session; True when a session's meter is stale."""
        views, stale = [], False
        limit = timedelta(seconds=self._settings.meter_stale)
        for active in snap.sessions:
            key = (active.charge_point_id, active.connector_id)
            member = member_for(snap.members, key)
            if member is None:
                continue
            share = snap.shares.get((member.charge_point_id, member.connector_id), 0)
            row = snap.applied.get(key)
            held = deci_down(row.limit_a) if row is not None else None
            draw = self._draws.get(key)
            fixed: int | None = None
            if active.charge_point_id not in self.online:
                # Offline: it keeps running its TxProfile (OCPP 1.6 §3.13.6); keep its share.
                fixed = max(held or 0, share)
            elif snap.strategy.get(active.charge_point_id) is Strategy.UNCONTROLLABLE:
                fixed = deci_down(member.max_a)
            elif active.charge_point_id in snap.violating:
                fixed = max(max(draw.phases_da) if draw else 0, deci_down(member.max_a))
            elif row is not None and row.status != "accepted":
                # Unconfirmed (a timeout): counted at the higher limit and sent again.
                fixed = held
            if draw is not None and now - draw.at > limit:
                stale = True
            used = sum(1 for p in draw.phases_da if p > _SIGNIFICANT_DA) if draw else 0
            views.append(
                SessionView(key, active.transaction_id, phases_used=used or None, fixed_da=fixed)
            )
        return self._rotate(views, snap, now), stale

    def _rotate(
        self, views: list[SessionView], snap: BalancerSnapshot, now: datetime
    ) -> list[SessionView]:
        """The views in rotation order, idle cars marked (docs/load-balancing.md, "Idle
        cars and rotation")."""
        live = {view.key for view in views}
        for key in self._idle.keys() - live:
            if member_for(snap.members, key) is not None:
                self._idle.forget(key)
        started = {(s.charge_point_id, s.connector_id): s.started_at for s in snap.sessions}
        for view in views:
            row = snap.applied.get(view.key)
            if row is not None and row.status == "accepted":
                serving, since = row.limit_a > 0, row.changed_at or now
            else:
                serving, since = False, started.get(view.key) or now
            self._idle.start(view.key, serving=serving, since=since)
        turns = [self._idle.turn(view.key, order=view.order, now=now) for view in views]
        rotated = rotation(turns, now=now, rotate_s=self._settings.rotate)
        return [
            dataclasses.replace(view, order=rotated.order[view.key], idle=view.key in rotated.idle)
            for view in views
        ]

    async def _send(
        self, changes: Sequence[Change], snap: BalancerSnapshot, root: str, now: datetime
    ) -> bool:
        """Send changes in parallel; True when any was not taken."""
        results = await asyncio.gather(*(self._apply(c, snap, now) for c in changes))
        return not all(results)

    async def _apply(self, change: Change, snap: BalancerSnapshot, now: datetime) -> bool:
        cp, connector = change.key
        member = member_for(snap.members, change.key)
        assert member is not None
        strategy = snap.strategy.get(cp, Strategy.TX_PROFILE)
        caps = snap.caps.get(cp, Caps())
        transaction = next(
            (
                s.transaction_id
                for s in snap.sessions
                if (s.charge_point_id, s.connector_id) == change.key
            ),
            None,
        )
        payload, lease_end = tx_profile(
            connector_id=connector,
            transaction_id=transaction,
            limit_da=change.limit_da,
            safe_da=snap.shares.get((member.charge_point_id, member.connector_id), 0),
            now=now,
            caps=caps,
            policy=self.policy,
            strategy=strategy,
            phases=member.phases,
        )
        share = snap.shares.get((member.charge_point_id, member.connector_id), 0)
        phases = snap.phases.get(change.key, member.phases)
        higher = max(change.limit_da, share if change.previous_da is None else change.previous_da)
        if change.kind is not ChangeKind.RENEW:
            # Kept before it is sent: if csms dies before the answer is recorded, the next
            # start counts the connector at the higher of its old and new limits.
            await self._record(
                change, member, transaction, higher, phases, "unknown", None, now, history=False
            )
        try:
            result = await self._commands.run(
                cp, "SetChargingProfile", payload, requested_by=REQUESTED_BY
            )
            status = result.response.get("status")
        except CommandTimeout:
            # Unknown: count the higher of the old and new limits until it is confirmed.
            self._count(change.kind.value, "unknown")
            await self._record(change, member, transaction, higher, phases, "unknown", None, now)
            return False
        except CommandRejected:
            status = "Rejected"
        except CommandError as exc:
            log.info("balancer_not_sent", charge_point_id=cp, error=str(exc))
            return False
        if status != "Accepted":
            self._count(change.kind.value, "rejected")
            await self._step_down(cp, strategy, member, snap, now)
            return False
        self._count(change.kind.value, "accepted")
        await self._record(
            change, member, transaction, change.limit_da, phases, "accepted", lease_end, now
        )
        return True

    async def _record(
        self,
        change: Change,
        member: MemberSpec,
        transaction: int | None,
        limit_da: int,
        phases: int,
        status: str,
        lease_end: datetime | None,
        now: datetime,
        *,
        history: bool = True,
    ) -> None:
        cp, connector = change.key
        reason = _reason(change.grant)
        row = CircuitAllocation(
            charge_point_id=cp,
            connector_id=connector,
            circuit_id=member.circuit_id,
            transaction_id=transaction,
            limit_a=limit_da / 10,
            phases=phases,
            reason=reason,
            status=status,
            lease_until=lease_end,
            changed_at=now,
        )
        previous = None if change.previous_da is None else change.previous_da / 10
        events = []
        if status == "accepted" and change.kind is not ChangeKind.RENEW:
            events.append(
                circuit_allocation(
                    cp,
                    circuit_id=member.circuit_id,
                    connector_id=connector,
                    limit_a=limit_da / 10,
                    previous_a=previous,
                    phases=phases,
                    transaction_id=transaction,
                    reason=reason,
                    at=now,
                )
            )

        async def job(session: AsyncSession) -> None:
            await circuits.record_allocation(session, row=row, previous_a=previous, history=history)
            await outbox.add_events(session, events, now=now)

        await self._database.writer.submit(job)
        if status == "accepted":
            self._limits[change.key] = (limit_da, now)
            self._idle.on_limit(change.key, limit_da=limit_da, now=now)

    async def _step_down(
        self, cp: str, strategy: Strategy, member: MemberSpec, snap: BalancerSnapshot, now: datetime
    ) -> None:
        """One rung down the ladder, kept for the charger; an event at the bottom."""
        following = next_rung(strategy, connectors=max(snap.connectors.get(cp, 1), 1))
        snap.strategy[cp] = following
        events = []
        if following is Strategy.UNCONTROLLABLE:
            events.append(
                member_uncontrollable(
                    cp,
                    circuit_id=member.circuit_id,
                    connector_id=None,
                    reason="rejected",
                    strategy=strategy.value,
                    counted_a=member.max_a,
                    at=now,
                )
            )
        log.warning("balancer_step_down", charge_point_id=cp, strategy=following.value)

        async def job(session: AsyncSession) -> None:
            await circuits.set_balancing(
                session, charge_point_id=cp, strategy=following.value, now=now
            )
            await outbox.add_events(session, events, now=now)

        await self._database.writer.submit(job)
        if following is not Strategy.UNCONTROLLABLE:
            self._wake_charger(cp)  # try the next rung now, not at the next trigger

    def _count(self, kind: str, outcome: str) -> None:
        self._metrics.balancer_profiles.labels(kind, outcome).inc()

    def _wake_charger(self, cp: str) -> None:
        for root in self._roots_of.get(cp, ()):
            self._mark(root)

    # -- overdraw --

    async def _find_overdraws(self, snap: BalancerSnapshot, now: datetime) -> None:
        """Chargers that accepted a limit and draw more: counted at their draw from now on,
        and reported (docs/load-balancing.md, "Verification")."""
        for key, row in snap.applied.items():
            cp = key[0]
            if cp in snap.violating or row.status != "accepted" or row.changed_at is None:
                continue
            draw = self._draws.get(key)
            if draw is None or draw.over < 2:
                continue
            snap.violating.add(cp)
            event = member_uncontrollable(
                cp,
                circuit_id=row.circuit_id,
                connector_id=key[1],
                reason="overdraw",
                strategy=snap.strategy.get(cp, Strategy.TX_PROFILE).value,
                counted_a=max(draw.phases_da) / 10,
                at=now,
            )
            strategy = snap.strategy.get(cp, Strategy.TX_PROFILE).value
            log.warning("balancer_overdraw", charge_point_id=cp, connector_id=key[1])

            await self._database.writer.submit(
                partial(
                    _mark_violating, charge_point_id=cp, strategy=strategy, event=event, now=now
                )
            )

    def _overdrawn(self, key: ConnectorKey, draw: _Draw) -> bool:
        """Count a sample over the accepted limit (past the grace period); True when the
        connector has been over it twice in a row."""
        accepted = self._limits.get(key)
        if accepted is None:
            return False
        limit_da, changed_at = accepted
        if draw.at - changed_at < timedelta(seconds=self._settings.overdraw_grace):
            return False
        if overdraws(Draw(draw.phases_da, draw.at), limit_da=limit_da):
            draw.over += 1
        else:
            draw.over = 0
        return draw.over >= 2


def _reason(grant: Grant) -> str:
    if grant.reason is Reason.CIRCUIT and grant.node_id is not None:
        return f"circuit {grant.node_id} L{(grant.phase or 0) + 1} full"
    if grant.reason is Reason.QUEUED and grant.node_id is not None:
        return f"queued: minimum does not fit under {grant.node_id}"
    return grant.reason.value


async def _mark_violating(
    session: AsyncSession, *, charge_point_id: str, strategy: str, event: Event, now: datetime
) -> None:
    await circuits.set_balancing(
        session,
        charge_point_id=charge_point_id,
        strategy=strategy,
        honours_limits="violating",
        note="draws more than the limit it accepted",
        now=now,
    )
    await outbox.add_events(session, [event], now=now)
