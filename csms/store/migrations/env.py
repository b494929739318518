"""Alembic environment: runs on the connection csms hands over (see csms.store.db.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import csms.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # Command-line use (`alembic revision --autogenerate` during development): a sync URL.
    url = config.get_main_option("sqlalchemy.url") or "sqlite:///./csms-dev.db"
    with create_engine(url).connect() as sync_connection:
        _run(sync_connection)
        sync_connection.commit()
