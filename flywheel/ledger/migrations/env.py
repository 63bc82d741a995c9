"""Alembic environment of the ledger.

Run through :mod:`flywheel.ledger.migrate`, which hands over an open
connection in ``config.attributes["connection"]`` (already in a transaction);
with no connection, an engine is made from the ``sqlalchemy.url`` option.
Offline (``--sql``) mode renders the SQL for that URL's dialect.

Importing this file outside Alembic (pytest's doctest collection does) does
nothing: Alembic's ``context.config`` only exists while Alembic runs it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from flywheel.ledger.engine import create_ledger_engine
from flywheel.ledger.tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration as SQL text for the configured URL."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the given connection, or over a fresh engine for the configured URL."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the ledger migrations")
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as fresh:
            _run(fresh)
    finally:
        engine.dispose()


if hasattr(context, "config"):  # run by Alembic, not merely imported
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
