"""Wallets: accounts, the ledger (a balance is its sum), vouchers, plans and subscriptions.

Postings never update a stored balance, so none can be lost: each is one INSERT. They are
made under a lock on the user's account row (PostgreSQL `FOR UPDATE`; SQLite has a single
writer), so the balance a posting reports is exactly the one after it, in posting order.
A posting with a reference already used for that user and kind is not made twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.core.money import from_units, to_units
from csms.store.sql import insert_into, page, rowcount
from csms.store.tables import (
    IdTag,
    LedgerEntry,
    SubscriptionPlan,
    Transaction,
    TransactionPricing,
    User,
    UserSubscription,
    Voucher,
    WalletAccount,
)

# -- accounts ------------------------------------------------------------------------------


async def user_of_tag(session: AsyncSession, id_tag: str) -> str | None:
    row = await session.get(IdTag, id_tag)
    return None if row is None else row.user_id


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def get_account(session: AsyncSession, user_id: str) -> WalletAccount | None:
    return await session.get(WalletAccount, user_id)


async def ensure_account(
    session: AsyncSession, *, user_id: str, currency: str, now: datetime
) -> WalletAccount:
    """The user's account, created (not prepaid, no group) the first time it is needed."""
    await session.execute(
        insert_into(session, WalletAccount)
        .values(user_id=user_id, currency=currency, prepaid=False, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    row = await session.get(WalletAccount, user_id)
    assert row is not None
    return row


async def update_account(
    session: AsyncSession,
    *,
    user_id: str,
    currency: str,
    prepaid: bool | None,
    tariff_group_id: str | None,
    set_group: bool,
    now: datetime,
) -> WalletAccount:
    row = await ensure_account(session, user_id=user_id, currency=currency, now=now)
    if prepaid is not None:
        row.prepaid = prepaid
    if set_group:
        row.tariff_group_id = tariff_group_id
    row.updated_at = now
    await session.flush()
    return row


# -- the ledger ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Posting:
    """One ledger entry to make: `amount` > 0 credits the user, < 0 debits."""

    user_id: str
    kind: str
    amount: Decimal
    currency: str
    reason: str
    reference: str


@dataclass(frozen=True)
class Posted:
    """A posting as made: its entry id and the balance right after it."""

    entry_id: int
    posting: Posting
    balance: Decimal


async def balance(session: AsyncSession, user_id: str) -> Decimal:
    """The sum of the user's ledger."""
    total = (
        await session.execute(
            select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
                col(LedgerEntry.user_id) == user_id
            )
        )
    ).scalar_one()
    return from_units(int(total))


async def record_running_cost(session: AsyncSession, *, transaction_id: int, cost: Decimal) -> None:
    """Keep a prepaid session's cost so far (the driver's other sessions count it)."""
    row = await session.get(TransactionPricing, transaction_id)
    if row is not None and row.running_cost != (units := to_units(cost)):
        row.running_cost = units
        await session.flush()


async def open_running_costs(
    session: AsyncSession, user_id: str, *, excluding: int | None = None
) -> list[Decimal]:
    """The running costs of the user's open prepaid sessions (but `excluding`); the ledger
    is charged with them only when their CDRs are made, as they stop."""
    query = (
        select(col(TransactionPricing.running_cost))
        .join(Transaction, col(Transaction.id) == col(TransactionPricing.transaction_id))
        .where(
            col(TransactionPricing.user_id) == user_id,
            col(TransactionPricing.running_cost).is_not(None),
            col(Transaction.stop_timestamp).is_(None),
        )
    )
    if excluding is not None:
        query = query.where(col(TransactionPricing.transaction_id) != excluding)
    return [from_units(units) for units in (await session.scalars(query)) if units is not None]


async def post(session: AsyncSession, posting: Posting, *, now: datetime) -> Posted | None:
    """Make a posting once per (user, kind, reference); None when it was made before."""
    await ensure_account(session, user_id=posting.user_id, currency=posting.currency, now=now)
    # The row lock orders postings of one user, so `balance` below is exactly this one's.
    await session.execute(
        select(WalletAccount).where(col(WalletAccount.user_id) == posting.user_id).with_for_update()
    )
    inserted = (
        await session.execute(
            insert_into(session, LedgerEntry)
            .values(
                user_id=posting.user_id,
                kind=posting.kind,
                amount=to_units(posting.amount),
                currency=posting.currency,
                reason=posting.reason,
                reference=posting.reference,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "kind", "reference"])
            .returning(col(LedgerEntry.id))
        )
    ).scalar_one_or_none()
    if inserted is None:
        return None
    return Posted(
        entry_id=int(inserted), posting=posting, balance=await balance(session, posting.user_id)
    )


async def posted_amount(
    session: AsyncSession, *, user_id: str, kind: str, reference: str
) -> Decimal | None:
    """The amount of the posting made with this reference, or None when there is none."""
    units = (
        await session.execute(
            select(col(LedgerEntry.amount)).where(
                col(LedgerEntry.user_id) == user_id,
                col(LedgerEntry.kind) == kind,
                col(LedgerEntry.reference) == reference,
            )
        )
    ).scalar_one_or_none()
    return None if units is None else from_units(int(units))


async def list_entries(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> tuple[list[LedgerEntry], int]:
    return await page(
        session,
        LedgerEntry,
        col(LedgerEntry.user_id) == user_id,
        col(LedgerEntry.id).desc(),
        limit,
        offset,
    )


# -- vouchers ------------------------------------------------------------------------------


async def create_voucher(session: AsyncSession, voucher: Voucher) -> bool:
    """Create a voucher; False when the code exists."""
    if await session.get(Voucher, voucher.code) is not None:
        return False
    session.add(voucher)
    await session.flush()
    return True


async def get_voucher(session: AsyncSession, code: str) -> Voucher | None:
    return await session.get(Voucher, code)


async def list_vouchers(
    session: AsyncSession, *, redeemed: bool | None, limit: int, offset: int
) -> tuple[list[Voucher], int]:
    where = None
    if redeemed is True:
        where = col(Voucher.redeemed_by).is_not(None)
    elif redeemed is False:
        where = col(Voucher.redeemed_by).is_(None)
    return await page(session, Voucher, where, col(Voucher.code), limit, offset)


async def claim_voucher(
    session: AsyncSession, *, code: str, user_id: str, now: datetime
) -> Voucher | None:
    """Mark a voucher redeemed by the user; None when it is unknown, used or expired.

    The conditional UPDATE is the guard: of two redemptions, even on two nodes, one wins.
    """
    result = await session.execute(
        update(Voucher)
        .where(
            col(Voucher.code) == code,
            col(Voucher.redeemed_by).is_(None),
            (col(Voucher.expires_at).is_(None)) | (col(Voucher.expires_at) > now),
        )
        .values(redeemed_by=user_id, redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not rowcount(result):
        return None
    return await session.get(Voucher, code, populate_existing=True)


# -- plans and subscriptions ---------------------------------------------------------------


async def put_plan(session: AsyncSession, plan: SubscriptionPlan, *, now: datetime) -> bool:
    row = await session.get(SubscriptionPlan, plan.id)
    if row is None:
        plan.created_at = now
        plan.updated_at = now
        session.add(plan)
        await session.flush()
        return True
    for name in ("name", "price", "currency", "period_days", "tariff_group_id", "auto_renew"):
        setattr(row, name, getattr(plan, name))
    row.updated_at = now
    await session.flush()
    return False


async def get_plan(session: AsyncSession, plan_id: str) -> SubscriptionPlan | None:
    return await session.get(SubscriptionPlan, plan_id)


async def list_plans(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[SubscriptionPlan], int]:
    return await page(session, SubscriptionPlan, None, col(SubscriptionPlan.id), limit, offset)


async def active_subscription(
    session: AsyncSession, *, user_id: str, at: datetime
) -> UserSubscription | None:
    """The user's subscription that is active and covers `at`, if any (newest first)."""
    rows = await session.execute(
        select(UserSubscription)
        .where(
            col(UserSubscription.user_id) == user_id,
            col(UserSubscription.status) == "active",
            col(UserSubscription.period_start) <= at,
            col(UserSubscription.period_end) > at,
        )
        .order_by(col(UserSubscription.period_start).desc())
        .limit(1)
    )
    return rows.scalars().first()


async def get_subscription(session: AsyncSession, subscription_id: str) -> UserSubscription | None:
    return await session.get(UserSubscription, subscription_id)


async def list_subscriptions(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> tuple[list[UserSubscription], int]:
    return await page(
        session,
        UserSubscription,
        col(UserSubscription.user_id) == user_id,
        col(UserSubscription.created_at).desc(),
        limit,
        offset,
    )


async def due_subscriptions(
    session: AsyncSession, *, at: datetime, limit: int
) -> Sequence[UserSubscription]:
    """Active subscriptions whose period has ended: to renew or to expire."""
    rows = await session.execute(
        select(UserSubscription)
        .where(
            and_(
                col(UserSubscription.status) == "active",
                col(UserSubscription.period_end) <= at,
            )
        )
        .order_by(col(UserSubscription.period_end))
        .limit(limit)
    )
    return list(rows.scalars())


async def next_period_end(session: AsyncSession) -> datetime | None:
    """When the next active subscription's period ends (for the renewal timer)."""
    result = await session.execute(
        select(func.min(col(UserSubscription.period_end))).where(
            col(UserSubscription.status) == "active"
        )
    )
    value = result.scalar_one_or_none()
    return value if isinstance(value, datetime) else None
