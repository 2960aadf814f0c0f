"""Shared fixtures: a freshly migrated database on SQLite and on PostgreSQL, and a manual clock.

PostgreSQL tests run in a schema of their own (``search_path``), created for the test and
dropped after it, so they can run in parallel with each other and with other test sessions.
Set ``TOKENMILL_TEST_POSTGRES_URL`` to point them elsewhere. Without a reachable server they
are skipped, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tokenmill.clock import ManualClock
from tokenmill.store.db import Database

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("TOKENMILL_TEST_REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The Redis server's URL; like PostgreSQL, missing fails under ``CI`` and skips otherwise."""
    import redis

    url = redis_url()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as error:
        message = f"Redis at {url} is unreachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_namespace(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    namespace = f"tm_test:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    yield namespace
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def postgres_url() -> str:
    return os.environ.get("TOKENMILL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _libpq_url(url: str) -> str:
    """The same URL without a SQLAlchemy driver suffix, for psycopg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    url = postgres_url()
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=5):
            pass
    except psycopg.Error as error:
        message = f"PostgreSQL at {make_url(url)!r} is unreachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A URL whose connections live in a new, empty schema, dropped afterwards."""
    schema = f"tm_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_url(server), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            make_url(server)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(_libpq_url(server), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tokenmill.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()


@dataclass(slots=True)
class QueryLog:
    """Every SQL statement an engine sent, in order."""

    statements: list[str] = field(default_factory=list)

    def count(self, containing: str = "") -> int:
        needle = containing.lower()
        return sum(1 for s in self.statements if needle in s.lower())

    def clear(self) -> None:
        self.statements.clear()


@pytest.fixture
def query_log(database: Database) -> Iterator[QueryLog]:
    log = QueryLog()

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        log.statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", before_execute)
    try:
        yield log
    finally:
        event.remove(database.engine, "before_cursor_execute", before_execute)


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: object) -> None:
    """A test that killed its worker (pytest-xdist) says what that usually means here."""
    report.longrepr = (
        f"{report.longrepr}\nThe test process died while running this test: a crash in native "
        "code (e.g. SIGSEGV in a llama.cpp kernel); Python's fatal-error dump, with the stack, "
        "is printed above. The rest of the suite runs on in a fresh worker."
    )
