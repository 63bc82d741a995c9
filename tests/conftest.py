"""Fixtures for the ledger tests: a fresh database per test, on SQLite and on PostgreSQL.

SQLite: a file in the test's tmp_path. PostgreSQL: the server at
127.0.0.1:5432, database ``test``, trust auth; each test gets its own schema
``fw_<hex>`` (selected through ``search_path`` in the URL) that is dropped
afterwards. When the server is unreachable the PostgreSQL cases are skipped,
saying so, unless ``FLYWHEEL_REQUIRE_POSTGRES=1``, which makes them fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from flywheel.ledger import Ledger

PG_HOST = "127.0.0.1:5432"
PG_DATABASE = "test"
PG_USERS = ("postgres", "", "root")  # "" : libpq's default (the OS user)
REQUIRE_POSTGRES_ENV = "FLYWHEEL_REQUIRE_POSTGRES"


def _pg_url(user: str, schema: str | None = None) -> str:
    who = f"{user}@" if user else ""
    url = f"postgresql+psycopg://{who}{PG_HOST}/{PG_DATABASE}"
    return f"{url}?options=-csearch_path%3D{schema}" if schema else url


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[tuple[Engine | None, str, str]]:
    """(engine, user, error): an autocommit engine on the test database, or None and why not."""
    errors: list[str] = []
    for user in PG_USERS:
        engine = create_engine(
            _pg_url(user),
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable as this user"
            engine.dispose()
            errors.append(f"user {user or '<default>'!s}: {str(exc).strip().splitlines()[0]}")
            continue
        yield engine, user, ""
        engine.dispose()
        return
    yield None, "", "; ".join(errors)


def _postgres_or_skip(admin: tuple[Engine | None, str, str]) -> tuple[Engine, str]:
    engine, user, error = admin
    if engine is None:
        message = f"PostgreSQL not reachable at {PG_HOST}: {error}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_POSTGRES_ENV}=1 requires it)", pytrace=False)
        pytest.skip(message)
    return engine, user


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: tuple[Engine | None, str, str]
) -> Iterator[str]:
    """The URL of an empty database (SQLite file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}"
        return
    engine, user = _postgres_or_skip(postgres_admin)
    schema = f"fw_{uuid.uuid4().hex}"
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_url(user, schema)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def make_ledger(database_url: str) -> Iterator[Callable[[], Ledger]]:
    """Makes ledgers on the test's database (each with its own engine); disposes them after."""
    made: list[Ledger] = []

    def make() -> Ledger:
        ledger = Ledger(database_url)
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.dispose()


@pytest.fixture
def ledger(make_ledger: Callable[[], Ledger]) -> Ledger:
    """A migrated ledger on an empty database."""
    fresh = make_ledger()
    fresh.upgrade()
    return fresh
