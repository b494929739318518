"""Where the password pepper comes from: configuration, or a file kept next to the database.

The pepper keys the HMAC of AuthorizationKeys (csms/core/passwords.py). It must not live in
the database, or a stolen dump would carry it, and it must stay the same across restarts,
or no stored key verifies any more (docs/security.md, "Passwords").
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog
from sqlalchemy.engine import make_url

from csms.errors import ConfigError

log = structlog.get_logger("csms.security")

PEPPER_BYTES = 32
PEPPER_FILE_SUFFIX = "-pepper"


def load_pepper(*, configured: str, database_url: str) -> bytes | None:
    """The pepper: `security.password_pepper` when set, else one generated once and kept in
    the file ``<SQLite database file>-pepper``.

    An in-memory SQLite database gets a pepper that lives as long as the process (so does
    the database). Other databases (PostgreSQL, shared by several nodes) get None when no
    pepper is configured: every node must use the same one, so csms does not invent it, and
    AuthorizationKeys are then hashed with scrypt like text passwords.

    Raises:
        ConfigError: the pepper file exists but cannot be read, or holds no pepper.
    """
    if configured:
        return configured.encode("utf-8")
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        log.warning(
            "password_pepper_missing",
            hint="set security.password_pepper (the same on every node) for fast key checks",
        )
        return None
    if url.database in (None, "", ":memory:"):
        return secrets.token_bytes(PEPPER_BYTES)
    return _pepper_file(Path(f"{url.database}{PEPPER_FILE_SUFFIX}"))


def _pepper_file(path: Path) -> bytes:
    if path.exists():
        return _read_pepper(path)
    pepper = secrets.token_bytes(PEPPER_BYTES)
    draft = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(pepper.hex() + "\n")
            file.flush()
            os.fsync(file.fileno())
        # link() never replaces: of two processes starting at once, one pepper wins and
        # both use it.
        os.link(draft, path)
    except FileExistsError:
        return _read_pepper(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the password pepper file {path}: {exc.strerror}") from exc
    finally:
        draft.unlink(missing_ok=True)
    log.info("password_pepper_created", path=str(path))
    return pepper


def _read_pepper(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the password pepper file {path}: {exc}") from exc
    try:
        pepper = bytes.fromhex(text)
    except ValueError:
        pepper = b""
    if len(pepper) < PEPPER_BYTES // 2:
        raise ConfigError(f"the password pepper file {path} does not hold a pepper (hex digits)")
    return pepper
