"""The ``apps`` and ``app_versions`` tables: a tenant's Apps and their immutable versions.

Saving a configuration makes a new version (1, 2, ...); one version at a time is published,
and that is the one a call without a version gets. Another tenant's App is no App (404).
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tokenmill.apps.config import parse_config
from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.protocol.requests import refuse_unknown
from tokenmill.store.app_tables import App, AppVersion
from tokenmill.store.db import Database

MAX_NAME = 200
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class AppInfo:
    id: str
    tenant_id: str
    name: str
    published_version: int | None
    latest_version: int
    embed: bool
    created_at: datetime
    updated_at: datetime
    embed_key_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "app",
            "id": self.id,
            "name": self.name,
            "published_version": self.published_version,
            "latest_version": self.latest_version,
            "embed": self.embed,
            "embed_url": f"/apps/{self.id}" if self.embed else None,
            "created_at": int(self.created_at.timestamp()),
            "updated_at": int(self.updated_at.timestamp()),
        }


@dataclass(frozen=True, slots=True)
class VersionInfo:
    app_id: str
    version: int
    config: dict[str, Any]
    note: str | None
    created_by: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "app.version",
            "app_id": self.app_id,
            "version": str(self.version),
            "config": self.config,
            "note": self.note,
            "created_at": int(self.created_at.timestamp()),
        }


def no_such_app(app_id: str, param: str = "app_id") -> NotFound:
    return NotFound(f"No App found with id '{app_id}'.", param=param, code="not_found")


class AppRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(self, tenant_id: str, name: Any, config: Any, created_by: str) -> AppInfo:
        parsed = parse_config(config)
        now = self._clock.utcnow()
        row = App(
            id=f"app_{secrets.token_hex(12)}",
            tenant_id=tenant_id,
            name=_name(name),
            published_version=None,
            latest_version=1,
            embed=False,
            embed_key_id=None,
            created_at=now,
            updated_at=now,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            session.add(AppVersion(app_id=row.id, version=1, config=parsed, note=None,
                                   created_by=created_by, created_at=now))  # fmt: skip
            return _info(row)

    def save_version(
        self, tenant_id: str, app_id: str, config: Any, note: Any, created_by: str
    ) -> VersionInfo:
        parsed = parse_config(config)
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            raise InvalidRequest(f"'note' is at most {MAX_NOTE} characters.", param="note")
        now = self._clock.utcnow()
        with self._db.session() as session:
            app = self._row(session, tenant_id, app_id, lock=True)
            app.latest_version += 1
            app.updated_at = now
            row = AppVersion(app_id=app.id, version=app.latest_version, config=parsed,
                             note=note, created_by=created_by, created_at=now)  # fmt: skip
            session.add(row)
            return _version(row)

    def update(self, tenant_id: str, app_id: str, body: dict[str, Any]) -> AppInfo:
        """``name``, ``embed`` and ``published_version`` (a saved version, or null)."""
        refuse_unknown(body, {"name", "embed", "published_version"})
        with self._db.session() as session:
            app = self._row(session, tenant_id, app_id, lock=True)
            if "name" in body:
                app.name = _name(body["name"])
            if "embed" in body:
                if not isinstance(body["embed"], bool):
                    raise InvalidRequest("'embed' is true or false.", param="embed")
                app.embed = body["embed"]
            if "published_version" in body:
                version = body["published_version"]
                if version is not None:
                    version = _version_number(version, "published_version")
                    if not 1 <= version <= app.latest_version:
                        raise InvalidRequest(
                            f"The App has versions 1 to {app.latest_version}.",
                            param="published_version",
                        )
                app.published_version = version
            app.updated_at = self._clock.utcnow()
            return _info(app)

    def set_embed_key(self, tenant_id: str, app_id: str, key_id: str) -> AppInfo:
        with self._db.session() as session:
            app = self._row(session, tenant_id, app_id)
            app.embed_key_id = key_id
            return _info(app)

    def get(self, tenant_id: str, app_id: str) -> AppInfo:
        with self._db.session() as session:
            return _info(self._row(session, tenant_id, app_id))

    def list(self, tenant_id: str) -> builtins.list[AppInfo]:
        with self._db.session() as session:
            rows = session.scalars(
                select(App).where(App.tenant_id == tenant_id).order_by(App.created_at.desc())
            )
            return [_info(row) for row in rows]

    def version(
        self, tenant_id: str, app_id: str, version: Any = None, *, param: str = "version"
    ) -> tuple[AppInfo, VersionInfo]:
        """The App and one version: the one asked for, else the published one, else the
        latest (a draft is callable by its own tenant while it is built)."""
        with self._db.session() as session:
            app = self._row(session, tenant_id, app_id)
            number = (
                _version_number(version, param)
                if version is not None
                else app.published_version or app.latest_version
            )
            row = session.get(AppVersion, (app.id, number))
            if row is None:
                raise NotFound(
                    f"The App '{app_id}' has no version {number}.", param=param, code="not_found"
                )
            return _info(app), _version(row)

    def versions(self, tenant_id: str, app_id: str) -> builtins.list[VersionInfo]:
        with self._db.session() as session:
            app = self._row(session, tenant_id, app_id)
            rows = session.scalars(
                select(AppVersion)
                .where(AppVersion.app_id == app.id)
                .order_by(AppVersion.version.desc())
            )
            return [_version(row) for row in rows]

    def public(self, app_id: str) -> tuple[AppInfo, VersionInfo] | None:
        """A published App whose chat page is on (``embed``), for the public page."""
        with self._db.session() as session:
            app = session.get(App, app_id)
            if app is None or not app.embed or app.published_version is None:
                return None
            row = session.get(AppVersion, (app.id, app.published_version))
            return None if row is None else (_info(app), _version(row))

    def _row(self, session: Any, tenant_id: str, app_id: str, *, lock: bool = False) -> App:
        if lock:
            self._db.lock(session, f"app:{app_id}")
        row = session.get(App, app_id)
        if row is None or row.tenant_id != tenant_id:
            raise no_such_app(app_id)
        return row  # type: ignore[no-any-return]


def _name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw.strip()) > MAX_NAME:
        raise InvalidRequest(f"'name' is 1 to {MAX_NAME} characters.", param="name")
    return raw.strip()


def _version_number(raw: Any, param: str) -> int:
    """Versions are numbers, given as OpenAI's prompts give them: strings ("3") or ints."""
    text = str(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # "²"; an INTEGER column
        raise InvalidRequest(f"'{param}' must be a version number such as \"3\".", param=param)
    return int(text)


def _info(row: App) -> AppInfo:
    return AppInfo(row.id, row.tenant_id, row.name, row.published_version, row.latest_version,
                   row.embed, row.created_at, row.updated_at, row.embed_key_id)  # fmt: skip


def _version(row: AppVersion) -> VersionInfo:
    return VersionInfo(row.app_id, row.version, row.config, row.note, row.created_by,
                       row.created_at)  # fmt: skip
