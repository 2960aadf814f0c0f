"""The database: one SQLAlchemy engine (SQLite or PostgreSQL), sessions, and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from tokenmill.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str) -> URL:
    """Accept plain ``postgresql://`` (and ``postgres://``) and pick the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


class Database:
    """Owns the engine; every repository gets one of these and opens short sessions on it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = self._create_engine(self.url, echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        url = normalize_url(settings.resolved_database_url)
        if settings.database_url is None:
            settings.ensure_data_dir()
        if url.get_backend_name() == "sqlite" and not _is_sqlite_memory(url):
            Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return cls(url.render_as_string(hide_password=False))

    @staticmethod
    def _create_engine(url: URL, echo: bool) -> Engine:
        if url.get_backend_name() == "postgresql":
            return create_engine(url, echo=echo, pool_pre_ping=True)
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if _is_sqlite_memory(url):
            # One shared connection, or every pooled connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, echo=echo, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back when it raises."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def lock(self, session: Session, name: str) -> None:
        """Holds a database-wide lock called ``name`` until the session's transaction ends.

        For check-then-act work that must not interleave across processes (first-start
        bootstrap). Call it before anything else in the session: on SQLite it is
        ``BEGIN IMMEDIATE``, which takes the whole database's write lock.
        """
        if self.dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
            )
        else:
            session.execute(text("BEGIN IMMEDIATE"))

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision``; a no-op when it is already there."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":  # processes starting together migrate in turn
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('migrate'))"))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
