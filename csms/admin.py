"""The one-shot admin commands of `csms`: apply migrations, add or reset an account.

They run instead of the server (csms/__main__.py), each with its own short-lived database.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from csms.config import Settings
from csms.core.access import Role, hash_account_password
from csms.store import accounts
from csms.store.db import Database

log = structlog.get_logger("csms")


async def migrate_only(settings: Settings) -> None:
    """Apply migrations and exit."""
    database = Database(settings.database.url)
    try:
        await database.migrate()
    finally:
        await database.dispose()
    log.info(
        "migrations_applied", database=database.engine.url.render_as_string(hide_password=True)
    )


async def add_account(
    settings: Settings, *, username: str, role: Role, password: str, update: bool
) -> bool:
    """`csms user add`: create an operator account (or, with `update`, reset one).

    Returns False when the username is taken (and `update` is off) or, with `update`,
    unknown.
    """
    database = Database(settings.database.url)
    password_hash = await asyncio.to_thread(
        hash_account_password, password, salt=secrets.token_bytes(16)
    )
    writer = asyncio.create_task(database.writer.run())
    try:
        await database.migrate()
        done = await database.writer.submit(
            partial(
                _save_account,
                username=username,
                role=role,
                password_hash=password_hash,
                update=update,
            )
        )
    finally:
        database.writer.close()
        await writer
        await database.dispose()
    log.info("account_saved" if done else "account_not_saved", username=username, role=role)
    return done


async def _save_account(
    session: AsyncSession, *, username: str, role: Role, password_hash: str, update: bool
) -> bool:
    now = datetime.now(UTC)
    existing = await accounts.find_account(session, username)
    if update:
        if existing is None:
            return False
        return await accounts.update_account(
            session, account_id=existing.id, role=role.value, password_hash=password_hash, now=now
        )
    return await accounts.create_account(
        session,
        account_id=str(uuid.uuid4()),
        username=username,
        role=role.value,
        password_hash=password_hash,
        now=now,
    )
