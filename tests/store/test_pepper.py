"""The password pepper: configured, or generated once into a file next to a SQLite database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from csms.errors import ConfigError
from csms.store.pepper import load_pepper


def test_a_configured_pepper_wins(tmp_path: Path) -> None:
    """security.password_pepper is used as given, and no file is written."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"
    assert load_pepper(configured="c" * 32, database_url=url) == b"c" * 32
    assert list(tmp_path.iterdir()) == []


def test_sqlite_gets_a_private_pepper_file_that_survives_restarts(tmp_path: Path) -> None:
    """The first start writes <database>-pepper (mode 0600); every later start reads it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}"
    first = load_pepper(configured="", database_url=url)
    path = tmp_path / "csms.db-pepper"
    assert first is not None
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_pepper(configured="", database_url=url) == first
    assert [p.name for p in tmp_path.iterdir()] == ["csms.db-pepper"]


def test_a_damaged_pepper_file_stops_the_start(tmp_path: Path) -> None:
    """A pepper file that holds no pepper is a start-up error, never silently replaced."""
    (tmp_path / "csms.db-pepper").write_text("not hex\n")
    with pytest.raises(ConfigError, match="does not hold a pepper"):
        load_pepper(configured="", database_url=f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}")


def test_in_memory_and_postgres_databases(tmp_path: Path) -> None:
    """An in-memory database gets a pepper for the process; PostgreSQL without one configured
    gets none (every node must share it), so keys fall back to scrypt."""
    memory = load_pepper(configured="", database_url="sqlite+aiosqlite://")
    assert memory is not None
    assert len(memory) == 32
    assert load_pepper(configured="", database_url="sqlite+aiosqlite://") != memory
    postgres = "postgresql+asyncpg://postgres@127.0.0.1/csms"
    assert load_pepper(configured="", database_url=postgres) is None
