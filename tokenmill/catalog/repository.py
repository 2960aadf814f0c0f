"""The model library in the database: models, their versions, aliases, and who may see them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tokenmill.catalog.card import TASKS, ModelCard
from tokenmill.clock import Clock
from tokenmill.errors import Conflict, InvalidRequest, ModelNotFound
from tokenmill.store.db import Database
from tokenmill.store.tables import Model, ModelAlias, ModelVersion

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    model_id: str
    version: str
    artifact: str
    sha256: str | None
    size_bytes: int | None
    settings: dict[str, Any]
    facts: dict[str, Any]
    measured: dict[str, Any] | None
    created_at: datetime

    @property
    def served_name(self) -> str:
        """What the replica of this version answers to, and what responses name."""
        return f"{self.model_id}@{self.version}"

    def context_tokens(self, model_context_tokens: int) -> int:
        configured = self.settings.get("context_tokens")
        trained = self.facts.get("context_tokens") or model_context_tokens
        return min(int(configured), int(trained)) if configured else int(trained)

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "model.version",
            "model": self.model_id,
            "version": self.version,
            "id": self.served_name,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "settings": self.settings,
            "measured": self.measured,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class AliasInfo:
    name: str
    model_id: str
    version: str
    owner_tenant_id: str | None
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "model.alias",
            "name": self.name,
            "model": self.model_id,
            "version": self.version,
            "owner": self.owner_tenant_id,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    task: str
    engine: str
    artifact: str
    context_tokens: int
    owner_tenant_id: str | None
    published: bool
    default_version: str | None
    card: ModelCard
    created_at: datetime
    versions: tuple[VersionInfo, ...] = ()

    def version(self, version: str | None = None) -> VersionInfo | None:
        wanted = version or self.default_version
        return next((v for v in self.versions if v.version == wanted), None)

    def card_of(self, version: VersionInfo | None) -> ModelCard:
        """The card as a reader sees it: people's words, then the artifact's facts, measured."""
        card = self.card
        if version is None:
            return card
        card = card.merged(
            {**version.facts, "sha256": version.sha256, "file_size_bytes": version.size_bytes}
        )
        return card.with_measured(version.measured) if version.measured else card


def _version(row: ModelVersion) -> VersionInfo:
    return VersionInfo(
        model_id=row.model_id,
        version=row.version,
        artifact=row.artifact,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        settings=dict(row.settings or {}),
        facts=dict(row.facts or {}),
        measured=dict(row.measured) if row.measured else None,
        created_at=row.created_at,
    )


def _info(row: Model, versions: list[ModelVersion]) -> ModelInfo:
    card = ModelCard.from_json(row.card) if row.card else ModelCard(name=row.id)
    return ModelInfo(
        id=row.id,
        task=row.task,
        engine=row.engine,
        artifact=row.artifact,
        context_tokens=row.context_tokens,
        owner_tenant_id=row.owner_tenant_id,
        published=row.published,
        default_version=row.default_version,
        card=card,
        created_at=row.created_at,
        versions=tuple(_version(v) for v in sorted(versions, key=lambda v: v.created_at)),
    )


def _alias(row: ModelAlias) -> AliasInfo:
    return AliasInfo(row.name, row.model_id, row.version, row.owner_tenant_id, row.updated_at)


def check_name(name: str, param: str) -> str:
    if not NAME.fullmatch(name) or "@" in name:
        raise InvalidRequest(
            f"'{name}' is not a valid name: lower-case letters, digits, '.', '_' and '-', "
            "at most 100 characters.",
            param=param,
        )
    return name


class ModelRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def register(
        self,
        model_id: str,
        *,
        task: str,
        artifact: str,
        context_tokens: int,
        owner_tenant_id: str | None = None,
        engine: str = "tokenmill",
        card: ModelCard | None = None,
        version: str = "1",
        sha256: str | None = None,
        size_bytes: int | None = None,
        facts: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> ModelInfo:
        """Adds a model with one version, or updates both if they are already known."""
        if task not in TASKS:
            raise InvalidRequest(f"task is one of {sorted(TASKS)}.", param="task")
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(Model, model_id)
            if row is None:
                row = Model(id=model_id, created_at=now, published=False)
                session.add(row)
            row.task, row.engine, row.artifact = task, engine, artifact
            row.context_tokens = context_tokens
            row.owner_tenant_id = owner_tenant_id
            row.card = (card or ModelCard(name=model_id)).as_json()
            row.default_version = row.default_version or version
            row.updated_at = now
            session.flush()
            self._put_version(
                session, model_id, version, artifact, sha256, size_bytes, facts, settings
            )
        return self.require(model_id)

    def add_version(
        self,
        model_id: str,
        version: str,
        *,
        artifact: str,
        sha256: str | None = None,
        size_bytes: int | None = None,
        facts: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        make_default: bool = False,
    ) -> VersionInfo:
        if not VERSION.fullmatch(version):
            raise InvalidRequest(f"'{version}' is not a valid version.", param="version")
        with self._db.session() as session:
            row = session.get(Model, model_id)
            if row is None:
                raise ModelNotFound(f"No model named '{model_id}'.", param="model")
            if session.get(ModelVersion, (model_id, version)) is not None:
                raise Conflict(f"{model_id} already has a version '{version}'.", param="version")
            self._put_version(
                session, model_id, version, artifact, sha256, size_bytes, facts, settings
            )
            if make_default or row.default_version is None:
                row.default_version = version
            row.updated_at = self._clock.utcnow()
        info = self.require(model_id).version(version)
        assert info is not None
        return info

    def _put_version(
        self,
        session: Any,
        model_id: str,
        version: str,
        artifact: str,
        sha256: str | None,
        size_bytes: int | None,
        facts: dict[str, Any] | None,
        settings: dict[str, Any] | None,
    ) -> None:
        row = session.get(ModelVersion, (model_id, version))
        if row is None:
            row = ModelVersion(model_id=model_id, version=version, created_at=self._clock.utcnow())
            session.add(row)
        row.artifact, row.sha256, row.size_bytes = artifact, sha256, size_bytes
        row.facts = facts if facts is not None else (row.facts or {})
        row.settings = settings if settings is not None else (row.settings or {})

    def update(
        self,
        model_id: str,
        *,
        card: ModelCard | None = None,
        published: bool | None = None,
        default_version: str | None = None,
    ) -> ModelInfo:
        with self._db.session() as session:
            row = session.get(Model, model_id)
            if row is None:
                raise ModelNotFound(f"No model named '{model_id}'.", param="model")
            if card is not None:
                row.card = card.as_json()
            if published is not None:
                row.published = published
            if default_version is not None:
                if session.get(ModelVersion, (model_id, default_version)) is None:
                    raise InvalidRequest(
                        f"{model_id} has no version '{default_version}'.", param="default_version"
                    )
                row.default_version = default_version
            row.updated_at = self._clock.utcnow()
        return self.require(model_id)

    def record_measured(self, model_id: str, version: str, measured: dict[str, float]) -> None:
        with self._db.session() as session:
            row = session.get(ModelVersion, (model_id, version))
            if row is not None:
                row.measured = {**(row.measured or {}), **measured}

    def set_alias(
        self, name: str, model_id: str, version: str, owner_tenant_id: str | None = None
    ) -> AliasInfo:
        """Points ``name`` at a version, creating the alias or moving it."""
        check_name(name, "name")
        with self._db.session() as session:
            if session.get(Model, name) is not None:
                raise Conflict(f"'{name}' is a model's name; an alias needs its own.", param="name")
            if session.get(ModelVersion, (model_id, version)) is None:
                raise InvalidRequest(f"{model_id} has no version '{version}'.", param="version")
            row = session.get(ModelAlias, name)
            if row is None:
                row = ModelAlias(name=name)
                session.add(row)
            elif row.owner_tenant_id != owner_tenant_id:
                raise Conflict(f"The alias '{name}' belongs to someone else.", param="name")
            row.model_id, row.version, row.owner_tenant_id = model_id, version, owner_tenant_id
            row.updated_at = self._clock.utcnow()
            session.flush()
            return _alias(row)

    def delete(self, model_id: str) -> None:
        """Removes a model with its versions and the aliases that name it (deployments of it
        are the caller's to end first)."""
        with self._db.session() as session:
            for alias in session.scalars(select(ModelAlias).where(ModelAlias.model_id == model_id)):
                session.delete(alias)
            query = select(ModelVersion).where(ModelVersion.model_id == model_id)
            for version in session.scalars(query):
                session.delete(version)
            session.flush()
            model = session.get(Model, model_id)
            if model is not None:
                session.delete(model)

    def delete_alias(self, name: str) -> None:
        with self._db.session() as session:
            row = session.get(ModelAlias, name)
            if row is not None:
                session.delete(row)

    def aliases(self) -> list[AliasInfo]:
        with self._db.session() as session:
            return [
                _alias(r) for r in session.scalars(select(ModelAlias).order_by(ModelAlias.name))
            ]

    def get(self, model_id: str) -> ModelInfo | None:
        with self._db.session() as session:
            row = session.get(Model, model_id)
            if row is None:
                return None
            versions = session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model_id)
            ).all()
            return _info(row, list(versions))

    def require(self, model_id: str) -> ModelInfo:
        info = self.get(model_id)
        if info is None:
            raise ModelNotFound(f"No model named '{model_id}'.", param="model")
        return info

    def list(self) -> list[ModelInfo]:
        with self._db.session() as session:
            versions: dict[str, list[ModelVersion]] = {}
            for v in session.scalars(select(ModelVersion)):
                versions.setdefault(v.model_id, []).append(v)
            return [
                _info(r, versions.get(r.id, []))
                for r in session.scalars(select(Model).order_by(Model.id))
            ]
