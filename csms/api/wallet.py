"""Wallet routes: a user's wallet and ledger, top-ups, fees, refunds, vouchers, plans and
subscriptions (docs/tariffs.md, "The wallet")."""

import secrets
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from csms.api.auth import require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page
from csms.core.access import Scope
from csms.core.clock import as_utc
from csms.core.money import from_units, round_money, to_units
from csms.core.wallet import PostingKind
from csms.errors import WalletError
from csms.flows.wallet import WalletFlows
from csms.store import tariffs, wallet
from csms.store.tables import LedgerEntry, SubscriptionPlan, UserSubscription, Voucher

UserPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._-]+$")]
PlanPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9._-]+$")]
CodePath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Amount = Annotated[Decimal, Field(gt=0, le=10**9, decimal_places=4)]


def _moment(value: datetime) -> datetime:
    # Checked before the conversion to UTC, which overflows at the ends of the calendar.
    if not 2000 <= value.year <= 2200:
        raise ValueError("a time between the years 2000 and 2200")
    return as_utc(value)


Moment = Annotated[datetime, AfterValidator(_moment)]


async def wallet_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WalletError)
    return JSONResponse(status_code=exc.status, content={"detail": str(exc)})


class WalletIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"prepaid": True, "tariffGroupId": "fleet"}]}
    )

    prepaid: bool | None = None
    tariff_group_id: str | None = Field(default=None, min_length=1, max_length=36)


class WalletOut(CamelModel):
    user_id: str
    currency: str
    prepaid: bool
    tariff_group_id: str | None
    balance: float


class PostingIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"amount": 20.0, "reason": "top-up by card", "reference": "pay_8x2k1"}]
        }
    )

    amount: Amount
    reason: str | None = Field(default=None, min_length=1, max_length=255)
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="your id of the payment or fee; a reference is posted once",
    )


class EntryOut(CamelModel):
    entry_id: int
    user_id: str
    kind: PostingKind
    amount: float
    currency: str
    reason: str
    reference: str
    created_at: datetime | None = None
    balance: float | None = Field(default=None, description="the balance right after it")


class VoucherIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"amount": 10.0, "description": "welcome", "expiresAt": None}]
        }
    )

    code: str | None = Field(
        default=None, min_length=4, max_length=64, pattern=r"^[A-Za-z0-9._-]+$"
    )
    amount: Amount
    description: str | None = Field(default=None, max_length=255)
    expires_at: Moment | None = None


class VoucherOut(CamelModel):
    code: str
    amount: float
    currency: str
    description: str | None
    expires_at: datetime | None
    redeemed_by: str | None
    redeemed_at: datetime | None


class RedeemIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"code": "WELCOME-2026"}]}
    )

    code: str = Field(min_length=1, max_length=64)


class PlanIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Commuter", "price": 9.99, "periodDays": 30, "tariffGroupId": "commuter"}
            ]
        }
    )

    name: str = Field(min_length=1, max_length=255)
    price: Annotated[Decimal, Field(ge=0, le=10**9, decimal_places=4)]
    period_days: int = Field(ge=1, le=3660)
    tariff_group_id: str = Field(min_length=1, max_length=36)
    auto_renew: bool = True


class PlanOut(PlanIn):
    plan_id: str
    currency: str


class SubscribeIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"planId": "commuter", "autoRenew": True}]}
    )

    plan_id: str = Field(min_length=1, max_length=36)
    auto_renew: bool | None = None


class SubscriptionOut(CamelModel):
    subscription_id: str
    user_id: str
    plan_id: str
    status: str
    auto_renew: bool
    period_start: datetime | None
    period_end: datetime | None


def _entry_out(row: LedgerEntry, balance: Decimal | None = None) -> EntryOut:
    assert row.id is not None
    return EntryOut(
        entry_id=row.id,
        user_id=row.user_id,
        kind=PostingKind(row.kind),
        amount=float(from_units(row.amount)),
        currency=row.currency,
        reason=row.reason,
        reference=row.reference,
        created_at=row.created_at,
        balance=None if balance is None else float(balance),
    )


def _voucher_out(row: Voucher) -> VoucherOut:
    return VoucherOut(
        code=row.code,
        amount=float(from_units(row.amount)),
        currency=row.currency,
        description=row.description,
        expires_at=row.expires_at,
        redeemed_by=row.redeemed_by,
        redeemed_at=row.redeemed_at,
    )


def _plan_out(row: SubscriptionPlan) -> PlanOut:
    return PlanOut(
        plan_id=row.id,
        name=row.name,
        price=from_units(row.price),
        currency=row.currency,
        period_days=row.period_days,
        tariff_group_id=row.tariff_group_id,
        auto_renew=row.auto_renew,
    )


def _subscription_out(row: UserSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        subscription_id=row.id,
        user_id=row.user_id,
        plan_id=row.plan_id,
        status=row.status,
        auto_renew=row.auto_renew,
        period_start=row.period_start,
        period_end=row.period_end,
    )


def _money(amount: Decimal, currency: str, field: str) -> Decimal:
    if round_money(amount, currency) != amount:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"body.{field}: more decimals than {currency} has",
        )
    return amount


def add_wallet_routes(router: APIRouter, ctx: ApiContext) -> None:
    flows = ctx.wallet
    assert flows is not None
    _add_accounts(router, ctx, flows)
    _add_postings(router, ctx, flows)
    _add_vouchers(router, ctx, flows)
    _add_subscriptions(router, ctx, flows)


def _add_accounts(router: APIRouter, ctx: ApiContext, flows: WalletFlows) -> None:
    async def load(user_id: str) -> WalletOut:
        async def query(session: AsyncSession) -> WalletOut | None:
            if await wallet.get_user(session, user_id) is None:
                return None
            account = await wallet.get_account(session, user_id)
            return WalletOut(
                user_id=user_id,
                currency=flows.currency if account is None else account.currency,
                prepaid=account is not None and account.prepaid,
                tariff_group_id=None if account is None else account.tariff_group_id,
                balance=float(await wallet.balance(session, user_id)),
            )

        found = await ctx.read(query)
        if found is None:
            raise not_found("user")
        return found

    @router.get("/users/{user_id}/wallet", tags=["wallet"], dependencies=[require(Scope.READ)])
    async def get_wallet(user_id: UserPath) -> WalletOut:
        """The user's balance (the sum of the ledger), prepaid flag and tariff group."""
        return await load(user_id)

    @router.put("/users/{user_id}/wallet", tags=["wallet"], dependencies=[require(Scope.ADMIN)])
    async def put_wallet(user_id: UserPath, body: WalletIn) -> WalletOut:
        """Make the user prepaid (or not) and put them in a tariff group."""
        await load(user_id)
        group_id = body.tariff_group_id
        if group_id is not None:
            group = await ctx.read(lambda session: tariffs.get_group(session, group_id))
            if group is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"body.tariffGroupId: unknown tariff group {group_id}",
                )
        await ctx.write(
            lambda session: wallet.update_account(
                session,
                user_id=user_id,
                currency=flows.currency,
                prepaid=body.prepaid,
                tariff_group_id=group_id,
                set_group="tariff_group_id" in body.model_fields_set,
                now=ctx.clock(),
            )
        )
        return await load(user_id)

    @router.get("/users/{user_id}/ledger", tags=["wallet"], dependencies=[require(Scope.READ)])
    async def list_ledger(
        user_id: UserPath, limit: Limit = 50, offset: Offset = 0
    ) -> Page[EntryOut]:
        """The user's postings, newest first."""
        rows, total = await ctx.read(
            lambda session: wallet.list_entries(
                session, user_id=user_id, limit=limit, offset=offset
            )
        )
        return Page[EntryOut](items=[_entry_out(row) for row in rows], total=total)


def _add_postings(router: APIRouter, ctx: ApiContext, flows: WalletFlows) -> None:
    async def post(
        user_id: str, body: PostingIn, *, kind: PostingKind, sign: int, default_reason: str
    ) -> EntryOut:
        posting = wallet.Posting(
            user_id=user_id,
            kind=kind,
            amount=sign * _money(body.amount, flows.currency, "amount"),
            currency=flows.currency,
            reason=body.reason or default_reason,
            reference=body.reference or str(uuid.uuid4()),
        )
        posted = await flows.post(posting)
        if posted is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"body.reference: {posting.reference} was already posted as a {kind}",
            )
        return EntryOut(
            entry_id=posted.entry_id,
            user_id=user_id,
            kind=kind,
            amount=float(posting.amount),
            currency=posting.currency,
            reason=posting.reason,
            reference=posting.reference,
            balance=float(posted.balance),
        )

    @router.post(
        "/users/{user_id}/balance",
        tags=["wallet"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def top_up(user_id: UserPath, body: PostingIn) -> EntryOut:
        """Credit the user's balance (a top-up); `user.balance_changed` follows."""
        return await post(user_id, body, kind=PostingKind.TOPUP, sign=1, default_reason="top-up")

    @router.post(
        "/users/{user_id}/fees",
        tags=["wallet"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def charge_fee(user_id: UserPath, body: PostingIn) -> EntryOut:
        """Debit a custom fee; `user.balance_changed` follows."""
        return await post(user_id, body, kind=PostingKind.FEE, sign=-1, default_reason="fee")

    @router.post(
        "/users/{user_id}/refunds",
        tags=["wallet"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def refund(user_id: UserPath, body: PostingIn) -> EntryOut:
        """Credit a refund; `user.balance_changed` follows."""
        return await post(user_id, body, kind=PostingKind.REFUND, sign=1, default_reason="refund")


def _add_vouchers(router: APIRouter, ctx: ApiContext, flows: WalletFlows) -> None:
    @router.post("/vouchers", tags=["wallet"], status_code=201, dependencies=[require(Scope.ADMIN)])
    async def create_voucher(body: VoucherIn) -> VoucherOut:
        """A voucher worth `amount`, redeemable once; a code is generated when none is given."""
        code = body.code or secrets.token_urlsafe(9)
        amount = _money(body.amount, flows.currency, "amount")
        row = Voucher(
            code=code,
            amount=to_units(amount),
            currency=flows.currency,
            description=body.description,
            expires_at=body.expires_at,
            created_at=ctx.clock(),
        )
        if not await ctx.write(lambda session: wallet.create_voucher(session, row)):
            raise HTTPException(status.HTTP_409_CONFLICT, f"body.code: {code} exists")
        return _voucher_out(row)

    @router.get("/vouchers", tags=["wallet"], dependencies=[require(Scope.READ)])
    async def list_vouchers(
        redeemed: Annotated[bool | None, Query()] = None, limit: Limit = 50, offset: Offset = 0
    ) -> Page[VoucherOut]:
        rows, total = await ctx.read(
            lambda session: wallet.list_vouchers(
                session, redeemed=redeemed, limit=limit, offset=offset
            )
        )
        return Page[VoucherOut](items=[_voucher_out(row) for row in rows], total=total)

    @router.get("/vouchers/{code}", tags=["wallet"], dependencies=[require(Scope.READ)])
    async def get_voucher(code: CodePath) -> VoucherOut:
        row = await ctx.read(lambda session: wallet.get_voucher(session, code))
        if row is None:
            raise not_found("voucher")
        return _voucher_out(row)

    @router.post(
        "/users/{user_id}/vouchers",
        tags=["wallet"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def redeem(user_id: UserPath, body: RedeemIn) -> EntryOut:
        """Redeem a voucher for the user: once, whoever tries first (409 afterwards)."""
        posted = await flows.redeem(user_id=user_id, code=body.code)
        posting = posted.posting
        return EntryOut(
            entry_id=posted.entry_id,
            user_id=user_id,
            kind=PostingKind.VOUCHER,
            amount=float(posting.amount),
            currency=posting.currency,
            reason=posting.reason,
            reference=posting.reference,
            balance=float(posted.balance),
        )


def _add_subscriptions(router: APIRouter, ctx: ApiContext, flows: WalletFlows) -> None:
    @router.put(
        "/subscription-plans/{plan_id}", tags=["wallet"], dependencies=[require(Scope.ADMIN)]
    )
    async def put_plan(plan_id: PlanPath, body: PlanIn, response: Response) -> PlanOut:
        """A plan: its price per period, the tariff group it grants, renewing or not."""
        group_id = body.tariff_group_id
        if await ctx.read(lambda session: tariffs.get_group(session, group_id)) is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"body.tariffGroupId: unknown tariff group {group_id}",
            )
        plan = SubscriptionPlan(
            id=plan_id,
            name=body.name,
            price=to_units(_money(body.price, flows.currency, "price")),
            currency=flows.currency,
            period_days=body.period_days,
            tariff_group_id=group_id,
            auto_renew=body.auto_renew,
        )
        created = await ctx.write(lambda session: wallet.put_plan(session, plan, now=ctx.clock()))
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return PlanOut(plan_id=plan_id, currency=flows.currency, **body.model_dump())

    @router.get(
        "/subscription-plans/{plan_id}", tags=["wallet"], dependencies=[require(Scope.READ)]
    )
    async def get_plan(plan_id: PlanPath) -> PlanOut:
        row = await ctx.read(lambda session: wallet.get_plan(session, plan_id))
        if row is None:
            raise not_found("subscription plan")
        return _plan_out(row)

    @router.get("/subscription-plans", tags=["wallet"], dependencies=[require(Scope.READ)])
    async def list_plans(limit: Limit = 50, offset: Offset = 0) -> Page[PlanOut]:
        rows, total = await ctx.read(
            lambda session: wallet.list_plans(session, limit=limit, offset=offset)
        )
        return Page[PlanOut](items=[_plan_out(row) for row in rows], total=total)

    @router.post(
        "/users/{user_id}/subscriptions",
        tags=["wallet"],
        status_code=201,
        dependencies=[require(Scope.ADMIN)],
    )
    async def subscribe(user_id: UserPath, body: SubscribeIn) -> SubscriptionOut:
        """Activate a subscription now; the first period is charged to the ledger."""
        change = await flows.subscribe(
            user_id=user_id, plan_id=body.plan_id, auto_renew=body.auto_renew
        )
        return _subscription_out(change.subscription)

    @router.get(
        "/users/{user_id}/subscriptions", tags=["wallet"], dependencies=[require(Scope.READ)]
    )
    async def list_subscriptions(
        user_id: UserPath, limit: Limit = 50, offset: Offset = 0
    ) -> Page[SubscriptionOut]:
        rows, total = await ctx.read(
            lambda session: wallet.list_subscriptions(
                session, user_id=user_id, limit=limit, offset=offset
            )
        )
        return Page[SubscriptionOut](items=[_subscription_out(r) for r in rows], total=total)

    @router.post(
        "/users/{user_id}/subscriptions/{subscription_id}/cancel",
        tags=["wallet"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def cancel(user_id: UserPath, subscription_id: PlanPath) -> SubscriptionOut:
        """Cancel now: no renewal, and its tariff group no longer applies to new sessions."""
        return _subscription_out(
            await flows.cancel(user_id=user_id, subscription_id=subscription_id)
        )
