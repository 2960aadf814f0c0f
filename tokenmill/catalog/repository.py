"""Models registered in the database: the bundled ones and, later, tenants' own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tokenmill.clock import Clock
from tokenmill.store.db import Database
from tokenmill.store.tables import Model


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    task: str
    artifact: str
    context_tokens: int
    owner_tenant_id: str | None
    created_at: datetime


def _info(row: Model) -> ModelInfo:
    return ModelInfo(
        id=row.id,
        task=row.task,
        artifact=row.artifact,
        context_tokens=row.context_tokens,
        owner_tenant_id=row.owner_tenant_id,
        created_at=row.created_at,
    )


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
    ) -> ModelInfo:
        """Adds a model, or updates its artifact and context if it is already known."""
        with self._db.session() as session:
            row = session.get(Model, model_id)
            if row is None:
                row = Model(id=model_id, created_at=self._clock.utcnow())
                session.add(row)
            row.task = task
            row.artifact = artifact
            row.context_tokens = context_tokens
            row.owner_tenant_id = owner_tenant_id
            session.flush()
            return _info(row)

    def get(self, model_id: str) -> ModelInfo | None:
        with self._db.session() as session:
            row = session.get(Model, model_id)
            return _info(row) if row else None

    def list(self) -> list[ModelInfo]:
        with self._db.session() as session:
            return [_info(r) for r in session.scalars(select(Model).order_by(Model.id))]
