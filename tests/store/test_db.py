from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from tokenmill.settings import Settings
from tokenmill.store.db import Database, normalize_url
from tokenmill.store.tables import ApiKey, Base, Tenant

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _tenant(tenant_id: str = "ten_1", name: str = "acme") -> Tenant:
    return Tenant(id=tenant_id, name=name, created_at=WHEN)


def _version(db: Database) -> str:
    with db.engine.connect() as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def test_migrate_twice_is_a_noop(database: Database) -> None:
    with database.session() as session:
        session.add(_tenant())
    version = _version(database)

    database.migrate()

    assert _version(database) == version == "0006"
    with database.session() as session:
        assert session.scalars(select(Tenant.name)).all() == ["acme"]


def test_migrated_schema_matches_the_tables(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_session_commits_on_success(database: Database) -> None:
    with database.session() as session:
        session.add(_tenant())
    with database.session() as session:
        assert session.get(Tenant, "ten_1") is not None


def test_session_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(_tenant())
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.get(Tenant, "ten_1") is None


def test_foreign_keys_are_enforced(database: Database) -> None:
    key = ApiKey(
        id="key_1",
        tenant_id="ten_missing",
        name="k",
        prefix="tm-12345678",
        secret_hash="0" * 64,
        role="inference",
        scopes=["*"],
        allowed_models=None,
        created_at=WHEN,
        expires_at=None,
        revoked_at=None,
    )
    with pytest.raises(IntegrityError), database.session() as session:
        session.add(key)


def test_datetimes_come_back_aware_in_utc(database: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    with database.session() as session:
        session.add(
            Tenant(id="ten_1", name="acme", created_at=datetime(2026, 3, 1, 12, tzinfo=plus_two))
        )
    with database.session() as session:
        created = session.get(Tenant, "ten_1")
        assert created is not None
        assert created.created_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
        assert created.created_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), database.session() as session:
        session.add(Tenant(id="ten_1", name="acme", created_at=datetime(2026, 1, 1)))


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
    finally:
        db.dispose()


def test_in_memory_sqlite_is_one_database() -> None:
    db = Database("sqlite://")
    try:
        db.migrate()
        with db.session() as session:
            session.add(_tenant())
        with db.session() as session:
            assert session.get(Tenant, "ten_1") is not None
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_urls_are_normalized(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")


def test_from_settings_creates_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    db = Database.from_settings(Settings(data_dir=data_dir, database_url=None))
    try:
        assert data_dir.is_dir()
        assert db.dialect == "sqlite"
        db.migrate()
        assert (data_dir / "tokenmill.db").is_file()
    finally:
        db.dispose()


def test_lock_serializes_read_modify_write(database: Database) -> None:
    with database.session() as session:
        session.add(Tenant(id="counter", name="0", created_at=WHEN))

    def increment() -> None:
        for _ in range(5):
            with database.session() as session:
                database.lock(session, "test.counter")
                row = session.get(Tenant, "counter")
                assert row is not None
                row.name = str(int(row.name) + 1)

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with database.session() as session:
        row = session.get(Tenant, "counter")
        assert row is not None and row.name == "20"
