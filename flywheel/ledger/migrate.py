"""Run the ledger's Alembic migrations from code; no ``alembic.ini`` is needed.

>>> from pathlib import Path
>>> cfg = alembic_config("postgresql+psycopg://u@h/db?options=-csearch_path%3Dfw")
>>> cfg.get_main_option("sqlalchemy.url")
'postgresql+psycopg://u@h/db?options=-csearch_path%3Dfw'
>>> Path(cfg.get_main_option("script_location")).name
'migrations'
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from flywheel.ledger.engine import write_transaction

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory shipped with the package."""

HEAD = "head"

_MIGRATION_LOCK_KEY = 0x466C7977686C4D31  # "FlywhlM1": an arbitrary, fixed bigint


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic config for the ledger's migrations, over ``connection`` or ``url``.

    ``url`` is stored with ``%`` escaped as ``%%`` (the config file syntax
    interpolates ``%``), so URL-encoded options survive.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_connection(connection: Connection, revision: str = HEAD) -> None:
    """Upgrade over ``connection`` (already in a transaction the caller commits)."""
    command.upgrade(alembic_config(connection=connection), revision)


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Upgrade the database behind ``engine`` to ``revision``, in one transaction.

    Safe to run from several processes at once: on PostgreSQL the transaction
    first takes a transaction-level advisory lock (the DDL is transactional, so
    the second process waits and then finds the schema current); on SQLite the
    transaction is ``BEGIN IMMEDIATE``, which holds the write lock throughout.
    """
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)" % _MIGRATION_LOCK_KEY)
        upgrade_connection(connection, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision of the ledger's migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
