"""`csms user add`: the first admin, made from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from csms.core.access import verify_account_password
from csms.store import accounts
from csms.store.db import Database
from tests.e2e.test_process import CSMS, env_for
from tests.support import MS


async def user_add(tmp_path: Path, *args: str, password: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CSMS,
        "user",
        "add",
        *args,
        env=env_for(tmp_path, CSMS_LOG__LEVEL="warning"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30_000 * MS):
        out, err = await process.communicate(f"{password}\n".encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def stored_hash(tmp_path: Path, username: str) -> tuple[str, str] | None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")
    try:
        row = await database.read(lambda session: accounts.find_account(session, username))
    finally:
        await database.dispose()
    return None if row is None else (row.role, row.password_hash)


async def test_user_add_creates_an_admin_with_a_hashed_password(tmp_path: Path) -> None:
    """`csms user add NAME` migrates, stores an admin with a scrypt hash, and exits 0."""
    code, out, err = await user_add(tmp_path, "root-ops", password="a long passphrase")
    assert code == 0, err
    assert out.strip() == "added admin root-ops"
    found = await stored_hash(tmp_path, "root-ops")
    assert found is not None
    role, password_hash = found
    assert role == "admin"
    assert verify_account_password("a long passphrase", password_hash)


async def test_user_add_refuses_a_taken_name_and_a_short_password(tmp_path: Path) -> None:
    """A second add of the same name exits 1; a short password exits 2; --update resets."""
    assert (await user_add(tmp_path, "ada", "--role", "viewer", password="first passphrase"))[
        0
    ] == 0
    taken = await user_add(tmp_path, "ada", password="second passphrase")
    short = await user_add(tmp_path, "bob", password="short")
    reset = await user_add(
        tmp_path, "ada", "--update", "--role", "operator", password="third passphrase"
    )
    assert taken[0] == 1
    assert "already an account named ada" in taken[2]
    assert short[0] == 2
    assert "at least 10 characters" in short[2]
    assert reset[0] == 0, reset[2]
    found = await stored_hash(tmp_path, "ada")
    assert found is not None
    assert found[0] == "operator"
    assert verify_account_password("third passphrase", found[1])
