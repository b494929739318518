"""Operator accounts, their dashboard sessions, and API keys (docs/operations.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from csms.store.sql import page, rowcount
from csms.store.tables import Account, AccountSession, ApiKey

# -- accounts --------------------------------------------------------------------------------


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def find_account(session: AsyncSession, username: str) -> Account | None:
    found = await session.execute(select(Account).where(col(Account.username) == username))
    return found.scalars().first()


async def list_accounts(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[Account], int]:
    return await page(session, Account, None, col(Account.username), limit, offset)


async def create_account(
    session: AsyncSession,
    *,
    account_id: str,
    username: str,
    role: str,
    password_hash: str,
    now: datetime,
) -> bool:
    """Add an account; False when the username is taken."""
    if await find_account(session, username) is not None:
        return False
    session.add(
        Account(
            id=account_id,
            username=username,
            role=role,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    return True


async def update_account(
    session: AsyncSession,
    *,
    account_id: str,
    role: str | None,
    password_hash: str | None,
    now: datetime,
) -> bool:
    """Change an account's role or password; a new password ends its sessions.

    Returns False when there is no such account.
    """
    row = await session.get(Account, account_id)
    if row is None:
        return False
    if role is not None:
        row.role = role
    if password_hash is not None:
        row.password_hash = password_hash
        await end_sessions(session, account_id=account_id)
    row.updated_at = now
    await session.flush()
    return True


async def delete_account(session: AsyncSession, *, account_id: str) -> bool:
    await end_sessions(session, account_id=account_id)
    result = await session.execute(delete(Account).where(col(Account.id) == account_id))
    return bool(rowcount(result))


# -- dashboard sessions ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedIn:
    """A live dashboard session and its account."""

    account_id: str
    username: str
    role: str
    csrf_token: str


async def start_session(
    session: AsyncSession,
    *,
    token_digest: str,
    account_id: str,
    csrf_token: str,
    remote_address: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Keep a new login, note when the account last logged in, and drop expired logins."""
    await session.execute(delete(AccountSession).where(col(AccountSession.expires_at) <= now))
    session.add(
        AccountSession(
            token_digest=token_digest,
            account_id=account_id,
            csrf_token=csrf_token,
            remote_address=remote_address,
            created_at=now,
            expires_at=expires_at,
        )
    )
    account = await session.get(Account, account_id)
    if account is not None:
        account.last_login_at = now
    await session.flush()


async def find_session(
    session: AsyncSession, *, token_digest: str, now: datetime
) -> LoggedIn | None:
    """The unexpired session with this token digest, with its account."""
    found = await session.execute(
        select(AccountSession, Account)
        .join(Account, col(Account.id) == col(AccountSession.account_id))
        .where(col(AccountSession.token_digest) == token_digest)
        .where(col(AccountSession.expires_at) > now)
    )
    row = found.first()
    if row is None:
        return None
    login, account = row
    return LoggedIn(
        account_id=account.id,
        username=account.username,
        role=account.role,
        csrf_token=login.csrf_token,
    )


async def end_session(session: AsyncSession, *, token_digest: str) -> None:
    await session.execute(
        delete(AccountSession).where(col(AccountSession.token_digest) == token_digest)
    )


async def end_sessions(session: AsyncSession, *, account_id: str) -> None:
    await session.execute(
        delete(AccountSession).where(col(AccountSession.account_id) == account_id)
    )


# -- API keys ----------------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession,
    *,
    key_id: str,
    name: str,
    scopes: Sequence[str],
    key_digest: str,
    hint: str,
    created_by: str,
    now: datetime,
) -> None:
    session.add(
        ApiKey(
            id=key_id,
            name=name,
            scopes=list(scopes),
            key_digest=key_digest,
            hint=hint,
            created_by=created_by,
            created_at=now,
        )
    )
    await session.flush()


async def find_api_key(session: AsyncSession, *, key_digest: str) -> ApiKey | None:
    found = await session.execute(select(ApiKey).where(col(ApiKey.key_digest) == key_digest))
    return found.scalars().first()


async def list_api_keys(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    return await page(session, ApiKey, None, col(ApiKey.created_at), limit, offset)


async def delete_api_key(session: AsyncSession, *, key_id: str) -> bool:
    result = await session.execute(delete(ApiKey).where(col(ApiKey.id) == key_id))
    return bool(rowcount(result))
