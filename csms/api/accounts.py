"""Account routes: operator accounts and API keys (admin scope), and who am I (read)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import ConfigDict, Field

from csms.api.auth import Principal, require
from csms.api.context import ApiContext, Limit, Offset, not_found
from csms.api.schemas import CamelModel, Page
from csms.core.access import (
    USERNAME_PATTERN,
    Role,
    Scope,
    hash_account_password,
    new_api_key,
    password_problem,
    token_digest,
)
from csms.store import accounts
from csms.store.tables import Account, ApiKey

AccountPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[A-Za-z0-9-]+$")]


class AccountIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"username": "ada", "password": "a long passphrase", "role": "operator"}]
        }
    )

    username: str = Field(pattern=USERNAME_PATTERN, description="the login name")
    password: str = Field(min_length=1, max_length=128, description="at least 10 characters")
    role: Role


class AccountPatch(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"role": "viewer"}]}
    )

    role: Role | None = None
    password: str | None = Field(default=None, min_length=1, max_length=128)


class AccountOut(CamelModel):
    account_id: str
    username: str
    role: Role
    created_at: datetime | None
    last_login_at: datetime | None


class ApiKeyIn(CamelModel):
    model_config = CamelModel.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "billing export", "scopes": ["read"]}]}
    )

    name: str = Field(min_length=1, max_length=255)
    scopes: list[Scope] = Field(min_length=1, max_length=3)


class ApiKeyOut(CamelModel):
    id: str
    name: str
    scopes: list[Scope]
    hint: str = Field(description="the key's first characters")
    created_by: str | None
    created_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the key itself: shown this once, only its digest is kept")


class Me(CamelModel):
    name: str
    kind: str
    scopes: list[Scope]


def _account_out(row: Account) -> AccountOut:
    return AccountOut(
        account_id=row.id,
        username=row.username,
        role=Role(row.role),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        scopes=[Scope(scope) for scope in row.scopes],
        hint=row.hint,
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def hashed(password: str) -> str:
    """An operator password's hash, computed off the event loop (scrypt takes ~0.2 s).

    Raises:
        HTTPException: 422, the password is too short.
    """
    problem = password_problem(password)
    if problem is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"body.{problem}")
    return await asyncio.to_thread(hash_account_password, password, salt=secrets.token_bytes(16))


def add_account_routes(router: APIRouter, ctx: ApiContext) -> None:
    _add_accounts(router, ctx)
    _add_api_keys(router, ctx)

    @router.get("/me", tags=["accounts"], dependencies=[require(Scope.READ)])
    async def get_me(request: Request) -> Me:
        """The caller: which credential, and its scopes."""
        principal: Principal = request.state.principal
        return Me(
            name=principal.name,
            kind=principal.kind.value,
            scopes=sorted(principal.scopes, key=list(Scope).index),
        )


def _add_accounts(router: APIRouter, ctx: ApiContext) -> None:
    admin = [require(Scope.ADMIN)]

    @router.get("/accounts", tags=["accounts"], dependencies=admin)
    async def list_accounts(limit: Limit = 50, offset: Offset = 0) -> Page[AccountOut]:
        """Operator accounts, by username."""
        rows, total = await ctx.read(
            lambda session: accounts.list_accounts(session, limit=limit, offset=offset)
        )
        return Page[AccountOut](items=[_account_out(row) for row in rows], total=total)

    @router.post("/accounts", tags=["accounts"], dependencies=admin, status_code=201)
    async def create_account(body: AccountIn) -> AccountOut:
        """Add an operator account (viewer, operator or admin); 409 when the name is taken."""
        password_hash = await hashed(body.password)
        account_id = str(uuid.uuid4())
        created = await ctx.write(
            lambda session: accounts.create_account(
                session,
                account_id=account_id,
                username=body.username,
                role=body.role.value,
                password_hash=password_hash,
                now=ctx.clock(),
            )
        )
        if not created:
            raise HTTPException(status.HTTP_409_CONFLICT, f"username {body.username} is taken")
        row = await ctx.read(lambda session: accounts.get_account(session, account_id))
        if row is None:  # deleted meanwhile
            raise not_found("account")
        return _account_out(row)

    @router.get("/accounts/{account_id}", tags=["accounts"], dependencies=admin)
    async def get_account(account_id: AccountPath) -> AccountOut:
        row = await ctx.read(lambda session: accounts.get_account(session, account_id))
        if row is None:
            raise not_found("account")
        return _account_out(row)

    @router.patch("/accounts/{account_id}", tags=["accounts"], dependencies=admin)
    async def update_account(account_id: AccountPath, body: AccountPatch) -> AccountOut:
        """Change a role or a password; a new password logs the account out everywhere."""
        password_hash = None if body.password is None else await hashed(body.password)
        found = await ctx.write(
            lambda session: accounts.update_account(
                session,
                account_id=account_id,
                role=None if body.role is None else body.role.value,
                password_hash=password_hash,
                now=ctx.clock(),
            )
        )
        if not found:
            raise not_found("account")
        row = await ctx.read(lambda session: accounts.get_account(session, account_id))
        if row is None:
            raise not_found("account")
        return _account_out(row)

    @router.delete("/accounts/{account_id}", tags=["accounts"], dependencies=admin, status_code=204)
    async def delete_account(account_id: AccountPath) -> None:
        """Remove an account and end its dashboard sessions."""
        if not await ctx.write(
            lambda session: accounts.delete_account(session, account_id=account_id)
        ):
            raise not_found("account")


def _add_api_keys(router: APIRouter, ctx: ApiContext) -> None:
    admin = [require(Scope.ADMIN)]

    @router.get("/api-keys", tags=["accounts"], dependencies=admin)
    async def list_api_keys(limit: Limit = 50, offset: Offset = 0) -> Page[ApiKeyOut]:
        """API keys without the keys themselves (only their first characters)."""
        rows, total = await ctx.read(
            lambda session: accounts.list_api_keys(session, limit=limit, offset=offset)
        )
        return Page[ApiKeyOut](items=[_key_out(row) for row in rows], total=total)

    @router.post("/api-keys", tags=["accounts"], dependencies=admin, status_code=201)
    async def create_api_key(body: ApiKeyIn, request: Request) -> ApiKeyCreated:
        """Make an API key; the answer carries the key once, only its digest is kept."""
        principal: Principal = request.state.principal
        key = new_api_key(secrets.token_bytes(32))
        key_id = str(uuid.uuid4())
        scopes = sorted(set(body.scopes), key=list(Scope).index)
        now = ctx.clock()
        await ctx.write(
            lambda session: accounts.create_api_key(
                session,
                key_id=key_id,
                name=body.name,
                scopes=[scope.value for scope in scopes],
                key_digest=token_digest(key),
                hint=key[:8],
                created_by=principal.name,
                now=now,
            )
        )
        return ApiKeyCreated(
            id=key_id,
            name=body.name,
            scopes=scopes,
            hint=key[:8],
            created_by=principal.name,
            created_at=now,
            key=key,
        )

    @router.delete("/api-keys/{key_id}", tags=["accounts"], dependencies=admin, status_code=204)
    async def delete_api_key(key_id: AccountPath) -> None:
        """Revoke an API key: the next request with it gets 401."""
        if not await ctx.write(lambda session: accounts.delete_api_key(session, key_id=key_id)):
            raise not_found("api key")
