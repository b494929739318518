"""Webhook routes: subscriptions, secret rotation, the delivery log and replays (docs/webhooks.md).

The bodies are defined here rather than in schemas.py: they are this resource's alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from csms.api.auth import require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page, UtcDateTime
from csms.core.access import Scope
from csms.core.webhooks import SubscriptionStatus, parse_secret, pattern_problem
from csms.errors import WebhookTargetRefused
from csms.events.envelope import EventType
from csms.flows.webhooks import SubscriptionChange
from csms.store.tables import WebhookDelivery, WebhookSubscription

WebhookPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=36,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="the subscription's id, chosen by the operator",
    ),
]
MAX_URL = 2048
MAX_PATTERNS = 64
MAX_CHARGERS = 10_000


def _check_secret(value: str) -> str:
    try:
        parse_secret(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


Secret = Annotated[str, Field(min_length=1, max_length=700), AfterValidator(_check_secret)]
SECRET_TEXT = "whsec_ + base64 of 24-512 random bytes; write-only"


class WebhookIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/csms-hook",
                    "eventTypes": ["session.*", "evse.status"],
                    "chargePointIds": ["CP-1"],
                    "description": "billing",
                }
            ]
        }
    )

    url: str = Field(min_length=1, max_length=MAX_URL)
    event_types: list[str] = Field(
        min_length=1,
        max_length=MAX_PATTERNS,
        description="event types as on MQTT; 'session.*' or '*' match several",
    )
    charge_point_ids: list[Annotated[str, Field(min_length=1, max_length=48)]] | None = Field(
        default=None, max_length=MAX_CHARGERS, description="only these chargers' events"
    )
    secret: Secret | None = Field(default=None, description=SECRET_TEXT)
    enabled: bool = True
    description: str | None = Field(default=None, max_length=1000)

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            problem = pattern_problem(pattern, (t.value for t in EventType))
            if problem is not None:
                raise ValueError(problem)
        return patterns


class RotationIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{}, {"overlapSeconds": 3600}]}
    )

    secret: Secret | None = Field(default=None, description=SECRET_TEXT)
    overlap_seconds: float | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="how long the old secret still signs (default webhooks.rotation_overlap)",
    )


class RotationOut(CamelModel):
    secret: str
    previous_secret_valid_until: datetime


class ReplayIn(CamelModel):
    """One logged delivery (`deliveryId`), or the events recorded in [`from`, `to`)."""

    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"deliveryId": 1234},
                {"from": "2026-03-01T10:00:00Z", "to": "2026-03-01T11:00:00Z"},
            ]
        }
    )

    delivery_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    recorded_from: UtcDateTime | None = Field(default=None, alias="from")
    recorded_to: UtcDateTime | None = Field(default=None, alias="to")

    @model_validator(mode="after")
    def _one_kind(self) -> ReplayIn:
        ranged = self.recorded_from is not None or self.recorded_to is not None
        if (self.delivery_id is None) == (not ranged):
            raise ValueError("give deliveryId, or from and to")
        if ranged and (self.recorded_from is None or self.recorded_to is None):
            raise ValueError("a range needs both from and to")
        if ranged:
            assert self.recorded_from is not None
            assert self.recorded_to is not None
            if self.recorded_to <= self.recorded_from:
                raise ValueError("to must be after from")
        return self


class ReplayOut(CamelModel):
    replay_id: int
    events: int = Field(description="outbox events in the range, before the filters")


class WebhookOut(CamelModel):
    id: str
    url: str
    event_types: list[str]
    charge_point_ids: list[str] | None
    enabled: bool
    status: SubscriptionStatus
    status_reason: str | None
    description: str | None
    failing_since: datetime | None
    previous_secret_valid_until: datetime | None = Field(
        description="while a rotation's overlap lasts: until when the old secret signs too"
    )
    created_at: datetime | None
    updated_at: datetime | None


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="shown this once; csms never shows it again")


class DeliveryOut(CamelModel):
    id: int
    event_id: str
    event_type: str
    charge_point_id: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: float
    response_body: str | None
    replay: bool
    attempted_at: datetime | None


def add_webhook_routes(router: APIRouter, ctx: ApiContext) -> None:
    flows = ctx.webhooks

    @router.put(
        "/webhooks/{webhook_id}",
        tags=["webhooks"],
        response_model=None,
        dependencies=[require(Scope.ADMIN)],
    )
    async def put_webhook(
        webhook_id: WebhookPath, body: WebhookIn, response: Response
    ) -> WebhookCreatedOut | WebhookOut:
        """Create or replace a subscription; the secret is in the answer only when this PUT
        created it (or set it)."""
        change = SubscriptionChange(
            url=body.url,
            event_types=tuple(dict.fromkeys(body.event_types)),
            charge_point_ids=None
            if body.charge_point_ids is None
            else tuple(dict.fromkeys(body.charge_point_ids)),
            enabled=body.enabled,
            description=body.description,
            secret=body.secret,
        )
        try:
            outcome = await flows.put(subscription_id=webhook_id, change=change, now=ctx.clock())
        except WebhookTargetRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"body.url: {exc}") from None
        response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        out = webhook_out(outcome.subscription, now=ctx.clock())
        if outcome.created and outcome.secret is not None:
            return WebhookCreatedOut(**out.model_dump(), secret=outcome.secret)
        return out

    @router.get("/webhooks/{webhook_id}", tags=["webhooks"], dependencies=[require(Scope.READ)])
    async def get_webhook(webhook_id: WebhookPath) -> WebhookOut:
        """A subscription, its status and filters; never its secret."""
        row = await flows.get(webhook_id)
        if row is None:
            raise not_found("webhook")
        return webhook_out(row, now=ctx.clock())

    @router.get("/webhooks", tags=["webhooks"], dependencies=[require(Scope.READ)])
    async def list_webhooks(limit: Limit = 50, offset: Offset = 0) -> Page[WebhookOut]:
        rows, total = await flows.page(limit=limit, offset=offset)
        now = ctx.clock()
        return Page[WebhookOut](items=[webhook_out(row, now=now) for row in rows], total=total)

    @router.delete(
        "/webhooks/{webhook_id}",
        tags=["webhooks"],
        status_code=204,
        dependencies=[require(Scope.ADMIN)],
    )
    async def delete_webhook(webhook_id: WebhookPath) -> None:
        """Remove a subscription and its delivery log; nothing more is sent to it."""
        if not await flows.delete(webhook_id):
            raise not_found("webhook")

    @router.post(
        "/webhooks/{webhook_id}/rotate-secret",
        tags=["webhooks"],
        dependencies=[require(Scope.ADMIN)],
    )
    async def rotate_secret(webhook_id: WebhookPath, body: RotationIn) -> RotationOut:
        """Sign with a new secret from now on; the old one also signs during the overlap."""
        overlap = None if body.overlap_seconds is None else timedelta(seconds=body.overlap_seconds)
        rotation = await flows.rotate_secret(
            subscription_id=webhook_id, secret=body.secret, overlap=overlap, now=ctx.clock()
        )
        if rotation is None:
            raise not_found("webhook")
        return RotationOut(
            secret=rotation.secret, previous_secret_valid_until=rotation.previous_valid_until
        )

    @router.get(
        "/webhooks/{webhook_id}/deliveries", tags=["webhooks"], dependencies=[require(Scope.READ)]
    )
    async def list_deliveries(
        webhook_id: WebhookPath, limit: Limit = 50, offset: Offset = 0
    ) -> Page[DeliveryOut]:
        """Every attempt, newest first: status, latency and the start of the answer."""
        if await flows.get(webhook_id) is None:
            raise not_found("webhook")
        rows, total = await flows.deliveries(subscription_id=webhook_id, limit=limit, offset=offset)
        return Page[DeliveryOut](items=[delivery_out(row) for row in rows], total=total)

    @router.post(
        "/webhooks/{webhook_id}/replay",
        tags=["webhooks"],
        status_code=202,
        dependencies=[require(Scope.ADMIN)],
    )
    async def replay(webhook_id: WebhookPath, body: ReplayIn) -> ReplayOut:
        """Send one delivery again, or what the subscription wants of a time range."""
        if await flows.get(webhook_id) is None:
            raise not_found("webhook")
        now = ctx.clock()
        if body.delivery_id is not None:
            try:
                found = await flows.replay_delivery(
                    subscription_id=webhook_id, delivery_id=body.delivery_id, now=now
                )
            except LookupError as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
            if found is None:
                raise not_found("delivery")
        else:
            assert body.recorded_from is not None
            assert body.recorded_to is not None
            found = await flows.replay_range(
                subscription_id=webhook_id,
                recorded_from=body.recorded_from,
                recorded_to=body.recorded_to,
                now=now,
            )
            if found is None:
                raise not_found("events in that range")
        return ReplayOut(replay_id=found.replay_id, events=found.events)


def webhook_out(row: WebhookSubscription, *, now: datetime) -> WebhookOut:
    until = row.previous_secret_until
    return WebhookOut(
        id=row.id,
        url=row.url,
        event_types=row.event_types,
        charge_point_ids=row.charge_point_ids,
        enabled=row.enabled,
        status=SubscriptionStatus(row.status),
        status_reason=row.status_reason,
        description=row.description,
        failing_since=row.failing_since,
        previous_secret_valid_until=until if until is not None and until > now else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    assert row.id is not None
    return DeliveryOut(
        id=row.id,
        event_id=row.event_id,
        event_type=row.event_type,
        charge_point_id=row.charge_point_id,
        attempt=row.attempt,
        status_code=row.status_code,
        error=row.error,
        latency_ms=row.latency_ms,
        response_body=row.response_body,
        replay=row.replay,
        attempted_at=row.attempted_at,
    )
