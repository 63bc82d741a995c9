"""Engines for the ledger: SQLite (the default) and PostgreSQL (psycopg 3).

SQLite connections are put in WAL mode with ``PRAGMA synchronous`` as asked
(``NORMAL`` by default, see :data:`DEFAULT_SYNCHRONOUS`), foreign keys on and
a 5 s busy timeout. Python's ``sqlite3`` module is told to keep out
of transaction handling and the ledger emits ``BEGIN`` itself, so that a write
transaction can start with ``BEGIN IMMEDIATE``: it takes SQLite's write lock
before its first read, which serializes writers (across threads and processes)
instead of failing one of them with ``SQLITE_BUSY`` when it upgrades a read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from functools import partial
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
"""SQLite's ``PRAGMA synchronous`` levels (https://sqlite.org/pragma.html#pragma_synchronous)."""

DEFAULT_SYNCHRONOUS: SqliteSynchronous = "NORMAL"
"""In WAL mode, NORMAL survives a killed process (a committed transaction is in the WAL file
before the commit returns) but not a power loss or OS crash, which may roll back the last
commits; FULL also syncs the WAL on every commit, surviving those at the cost of an fsync
per write transaction."""

WRITE_OPTION = "flywheel_write"
"""Execution option marking a connection whose transaction will write."""


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a bare ``postgresql://`` (or ``postgres://``) gets the psycopg 3 driver.

    >>> normalize_url("postgresql://u@h/db").drivername
    'postgresql+psycopg'
    >>> normalize_url("sqlite:///x.db").drivername
    'sqlite'
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_ledger_engine(
    url: str | URL, *, echo: bool = False, synchronous: SqliteSynchronous = DEFAULT_SYNCHRONOUS
) -> Engine:
    """An engine for ``url``, configured as the module docstring says (``synchronous``: SQLite only)."""
    if synchronous not in get_args(SqliteSynchronous):
        raise ValueError(f"synchronous: must be one of {get_args(SqliteSynchronous)}, got {synchronous!r}")
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo, synchronous=synchronous)
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def _sqlite_engine(url: URL, *, echo: bool, synchronous: SqliteSynchronous) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo)
    event.listen(engine, "connect", partial(_on_sqlite_connect, synchronous=synchronous))
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any, *, synchronous: SqliteSynchronous) -> None:
    # Autocommit at the driver level: the "begin" listener emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")  # one of SqliteSynchronous: checked
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write; committed on normal exit.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (see the module
    docstring); elsewhere it is an ordinary transaction.
    """
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction: one consistent snapshot for several queries.

    SQLite transactions are snapshots already; on PostgreSQL the transaction
    is ``REPEATABLE READ`` (which never fails a read-only transaction).
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection
