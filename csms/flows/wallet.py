"""The driver's wallet: postings and their `user.balance_changed`, vouchers, prepaid rules,
subscriptions and their renewal, and the remote stop when a balance runs out.

Every posting and the event it causes are written by one writer job (docs/tariffs.md,
"The wallet"). A balance is the sum of the ledger; postings are made once per reference.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.core.authorize import AuthorizationStatus, IdTagInfo
from csms.core.events import Event
from csms.core.money import ZERO, round_money
from csms.core.session import Party, SessionFacts
from csms.core.tariff_ocpi import PricedSession
from csms.core.wallet import PostingKind, balance_exceeded, may_start, prepaid_minimum
from csms.errors import WalletError
from csms.events import build
from csms.flows.commands import CommandRunner
from csms.flows.tariffs import SessionPricing
from csms.store import chargers, outbox, tariffs, wallet
from csms.store.db import Database
from csms.store.tables import SubscriptionPlan, UserSubscription

log = structlog.get_logger("csms.wallet")

BALANCE_EXCEEDED = "balance_exceeded"


def balance_event(posted: wallet.Posted, *, at: datetime) -> Event:
    posting = posted.posting
    return build.user_balance_changed(
        posting.user_id,
        amount=posting.amount,
        balance=posted.balance,
        currency=posting.currency,
        kind=posting.kind,
        reason=posting.reason,
        reference=posting.reference,
        at=at,
    )


async def post_with_event(
    session: AsyncSession, posting: wallet.Posting, *, now: datetime
) -> wallet.Posted | None:
    """Make a posting and write its `user.balance_changed` in the same job."""
    posted = await wallet.post(session, posting, now=now)
    if posted is not None:
        await outbox.add_events(session, [balance_event(posted, at=now)], now=now)
    return posted


class RemoteStops:
    """Asks chargers to stop transactions, in the background.

    A MeterValues handler must never await a call to its own charger (the connection's
    loop waits for the handler; docs/architecture.md, "Connections"), so the call runs in
    a task of its own; a reference to each task is kept until it ends.
    """

    def __init__(self) -> None:
        self.commands: CommandRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, charge_point_id: str, transaction_id: int) -> None:
        task = asyncio.create_task(self._stop(charge_point_id, transaction_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop(self, charge_point_id: str, transaction_id: int) -> None:
        if self.commands is None:
            return
        try:
            await self.commands.run(
                charge_point_id,
                "RemoteStopTransaction",
                {"transactionId": transaction_id},
                requested_by="csms:wallet",
            )
        except Exception as exc:  # the charger's answer or absence is recorded by Commands
            log.warning("balance_stop_failed", transaction_id=transaction_id, error=repr(exc))


@dataclass(frozen=True)
class SubscriptionChange:
    subscription: UserSubscription
    posted: wallet.Posted | None


class WalletFlows:
    """Postings the operator makes, prepaid decisions, and subscriptions."""

    def __init__(
        self,
        *,
        database: Database,
        party: Party,
        pricing: SessionPricing,
        clock: Callable[[], datetime],
    ) -> None:
        self._database = database
        self._writer = database.writer
        self._party = party
        self._pricing = pricing
        self._clock = clock
        self.stops = RemoteStops()

    @property
    def currency(self) -> str:
        return self._party.currency

    # -- postings ------------------------------------------------------------------------

    async def post(self, posting: wallet.Posting) -> wallet.Posted | None:
        """A top-up, fee or refund with its event; None when the reference was used."""
        now = self._clock()
        self._check_currency(posting.currency)

        async def job(session: AsyncSession) -> wallet.Posted | None:
            if await wallet.get_user(session, posting.user_id) is None:
                raise WalletError(f"user {posting.user_id} not found", status=404)
            return await post_with_event(session, posting, now=now)

        posted: wallet.Posted | None = await self._writer.submit(job)
        return posted

    def _check_currency(self, currency: str) -> None:
        if currency != self.currency:
            raise WalletError(f"wallets are kept in {self.currency} ([ocpi] currency)")

    async def redeem(self, *, user_id: str, code: str) -> wallet.Posted:
        """Redeem a voucher once: the claim and the credit commit together."""
        now = self._clock()

        async def job(session: AsyncSession) -> wallet.Posted:
            if await wallet.get_user(session, user_id) is None:
                raise WalletError(f"user {user_id} not found", status=404)
            voucher = await wallet.claim_voucher(session, code=code, user_id=user_id, now=now)
            if voucher is None:
                raise WalletError(f"voucher {code} is unknown, used or expired", status=409)
            posted = await post_with_event(
                session,
                wallet.Posting(
                    user_id=user_id,
                    kind=PostingKind.VOUCHER,
                    amount=Decimal(voucher.amount).scaleb(-4),
                    currency=voucher.currency,
                    reason=voucher.description or "voucher",
                    reference=code,
                ),
                now=now,
            )
            assert posted is not None  # a voucher is claimed once, so its reference is new
            return posted

        posted: wallet.Posted = await self._writer.submit(job)
        return posted

    # -- prepaid -------------------------------------------------------------------------

    async def check_prepaid(
        self,
        session: AsyncSession,
        *,
        info: IdTagInfo,
        id_tag: str,
        charge_point_id: str,
        connector_id: int,
        location_id: str | None,
        at: datetime,
        find_location: bool = False,
    ) -> IdTagInfo:
        """Blocked for a prepaid driver whose available balance cannot cover the tariff's
        minimum.

        docs/tariffs.md, "Prepaid": available is the balance less the running cost of the
        driver's open sessions; the minimum is the tariff's min_price (incl. VAT when given),
        else its start fee, and nothing available never covers a session.
        """
        if info.status is not AuthorizationStatus.ACCEPTED:
            return info
        user_id = await wallet.user_of_tag(session, id_tag)
        if user_id is None:
            return info
        account = await wallet.get_account(session, user_id)
        if account is None or not account.prepaid:
            return info
        if find_location:  # Authorize names no transaction: the charger's location it is
            charger = await chargers.get_charge_point(session, charge_point_id)
            location_id = None if charger is None else charger.location_id
        resolved = await self._pricing.resolve(
            session,
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            user_id=user_id,
            location_id=location_id,
            at=at,
        )
        minimum = ZERO if resolved is None else prepaid_minimum(resolved[2])
        # The driver's sessions running elsewhere have spent part of the balance already.
        balance = await wallet.balance(session, user_id)
        open_costs = await wallet.open_running_costs(session, user_id)
        if may_start(balance, open_costs=open_costs, minimum=minimum):
            return info
        return IdTagInfo(
            status=AuthorizationStatus.BLOCKED,
            expiry_date=info.expiry_date,
            parent_id_tag=info.parent_id_tag,
        )

    async def check_running(
        self, facts: SessionFacts, priced: PricedSession, *, user_id: str, at: datetime
    ) -> None:
        """Keep a prepaid session's running cost; stop it when the driver's open sessions
        together reached the balance.

        docs/tariffs.md, "Prepaid": every session of the driver stops then, each at its own
        next reading (`balance_exceeded`); `session.updated` says why, once per session.
        """
        total = priced.costs.total
        cost = total.incl_vat if total.incl_vat is not None else total.excl_vat
        transaction_id = facts.transaction_id

        async def job(session: AsyncSession) -> bool:
            await wallet.record_running_cost(session, transaction_id=transaction_id, cost=cost)
            others = await wallet.open_running_costs(session, user_id, excluding=transaction_id)
            balance = await wallet.balance(session, user_id)
            if not balance_exceeded(balance, own_cost=cost, other_costs=others):
                return False
            claimed = await tariffs.claim_balance_stop(
                session, transaction_id=transaction_id, reason=BALANCE_EXCEEDED
            )
            if claimed:
                event = build.session_updated(facts, at=at, priced=priced, reason=BALANCE_EXCEEDED)
                await outbox.add_events(session, [event], now=at)
            return claimed

        if await self._writer.submit(job):
            self.stops.request(facts.charge_point_id, transaction_id)

    async def charge_session(
        self,
        session: AsyncSession,
        *,
        user_id: str,
        transaction_id: int,
        amount: Decimal,
        currency: str,
        now: datetime,
        cdr_id: str | None = None,
    ) -> list[Event]:
        """Debit a session's cost when its CDR is made, once per CDR: the reference is the
        CDR id (the transaction id for its first CDR, `{id}-R` for the one replacing an
        estimate)."""
        if amount <= 0:
            return []
        reference = cdr_id if cdr_id is not None else str(transaction_id)
        posted = await wallet.post(
            session,
            wallet.Posting(
                user_id=user_id,
                kind=PostingKind.SESSION,
                amount=-amount,
                currency=currency,
                reason=f"charging session {transaction_id}",
                reference=reference,
            ),
            now=now,
        )
        return [] if posted is None else [balance_event(posted, at=now)]

    async def credit_session(
        self,
        session: AsyncSession,
        *,
        user_id: str,
        transaction_id: int,
        credited_cdr_id: str,
        credit_cdr_id: str,
        now: datetime,
    ) -> list[Event]:
        """Give back what the credited CDR was charged (OCPI 2.2.1 mod_cdrs §Credit CDRs:
        the credit negates the original's cost), once: the reference is the credit CDR."""
        charged = await wallet.posted_amount(
            session, user_id=user_id, kind=PostingKind.SESSION, reference=credited_cdr_id
        )
        if charged is None or charged >= 0:
            return []
        account = await wallet.get_account(session, user_id)
        assert account is not None
        posted = await wallet.post(
            session,
            wallet.Posting(
                user_id=user_id,
                kind=PostingKind.SESSION,
                amount=-charged,
                currency=account.currency,
                reason=f"credit of the estimated cost of charging session {transaction_id}",
                reference=credit_cdr_id,
            ),
            now=now,
        )
        return [] if posted is None else [balance_event(posted, at=now)]

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(
        self, *, user_id: str, plan_id: str, auto_renew: bool | None
    ) -> SubscriptionChange:
        """Start a subscription now; its first period is charged to the ledger."""
        now = self._clock()

        async def job(session: AsyncSession) -> SubscriptionChange:
            if await wallet.get_user(session, user_id) is None:
                raise WalletError(f"user {user_id} not found", status=404)
            plan = await wallet.get_plan(session, plan_id)
            if plan is None:
                raise WalletError(f"body.planId: unknown plan {plan_id}")
            subscription = UserSubscription(
                id=str(uuid.uuid4()),
                user_id=user_id,
                plan_id=plan.id,
                status="active",
                auto_renew=plan.auto_renew if auto_renew is None else auto_renew,
                period_start=now,
                period_end=now + timedelta(days=plan.period_days),
                created_at=now,
                updated_at=now,
            )
            session.add(subscription)
            await session.flush()
            posted = await self._charge_period(session, subscription, plan, now=now)
            await outbox.add_events(session, [_subscription_event(subscription, at=now)], now=now)
            return SubscriptionChange(subscription=subscription, posted=posted)

        change: SubscriptionChange = await self._writer.submit(job)
        return change

    async def _charge_period(
        self,
        session: AsyncSession,
        subscription: UserSubscription,
        plan: SubscriptionPlan,
        *,
        now: datetime,
    ) -> wallet.Posted | None:
        assert subscription.period_start is not None
        if plan.price <= 0:
            return None
        start = subscription.period_start.strftime("%Y-%m-%dT%H:%M:%SZ")
        return await post_with_event(
            session,
            wallet.Posting(
                user_id=subscription.user_id,
                kind=PostingKind.SUBSCRIPTION,
                amount=-round_money(Decimal(plan.price).scaleb(-4), plan.currency),
                currency=plan.currency,
                reason=f"subscription {plan.name}",
                reference=f"{subscription.id}@{start}",
            ),
            now=now,
        )

    async def cancel(self, *, user_id: str, subscription_id: str) -> UserSubscription:
        """Cancel now: the plan's tariff group no longer applies to new sessions."""
        now = self._clock()

        async def job(session: AsyncSession) -> UserSubscription:
            subscription = await wallet.get_subscription(session, subscription_id)
            if subscription is None or subscription.user_id != user_id:
                raise WalletError("subscription not found", status=404)
            if subscription.status != "active":
                raise WalletError(f"subscription is {subscription.status}", status=409)
            subscription.status = "canceled"
            subscription.auto_renew = False
            subscription.updated_at = now
            await session.flush()
            await outbox.add_events(session, [_subscription_event(subscription, at=now)], now=now)
            return subscription

        changed: UserSubscription = await self._writer.submit(job)
        return changed

    async def renew_due(self, *, now: datetime, limit: int = 500) -> int:
        """Renew (and charge) or expire every active subscription whose period ended."""

        async def job(session: AsyncSession) -> int:
            due = await wallet.due_subscriptions(session, at=now, limit=limit)
            for subscription in due:
                await self._renew_or_expire(session, subscription, now=now)
            return len(due)

        count: int = await self._writer.submit(job)
        return count

    async def _renew_or_expire(
        self, session: AsyncSession, subscription: UserSubscription, *, now: datetime
    ) -> None:
        plan = await wallet.get_plan(session, subscription.plan_id)
        assert subscription.period_end is not None
        if plan is None or not subscription.auto_renew:
            subscription.status = "expired"
        else:
            # Periods follow each other without a gap, however late the renewal runs.
            while subscription.period_end <= now:
                subscription.period_start = subscription.period_end
                subscription.period_end = subscription.period_end + timedelta(days=plan.period_days)
                await self._charge_period(session, subscription, plan, now=now)
        subscription.updated_at = now
        await session.flush()
        await outbox.add_events(session, [_subscription_event(subscription, at=now)], now=now)


def _subscription_event(subscription: UserSubscription, *, at: datetime) -> Event:
    assert subscription.period_start is not None
    assert subscription.period_end is not None
    return build.user_subscription_changed(
        subscription.user_id,
        subscription_id=subscription.id,
        plan_id=subscription.plan_id,
        status=subscription.status,
        period_start=subscription.period_start,
        period_end=subscription.period_end,
        at=at,
    )


class SubscriptionRenewal:
    """Renews or expires subscriptions when their period ends (a periodic job)."""

    def __init__(
        self,
        *,
        flows: WalletFlows,
        database: Database,
        clock: Callable[[], datetime],
        interval: float,
    ) -> None:
        self._flows = flows
        self._database = database
        self._clock = clock
        self._interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                while await self._flows.renew_due(now=self._clock()):
                    pass
            except Exception as exc:  # the database may be down: try again next round
                log.warning("subscription_renewal_failed", error=repr(exc))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
