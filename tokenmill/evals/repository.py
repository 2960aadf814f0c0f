"""The ``evals`` and ``eval_results`` tables.

Reads by a client take the tenant: another tenant's evaluation is no evaluation at all (404).
A model's result is written once per evaluation (a retried run skips the models it has); a
model card reads the latest results the reader may see: its own tenant's, and published ones.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select

from tokenmill.clock import Clock
from tokenmill.errors import NotFound
from tokenmill.evals.objects import EvalInfo, EvalRequest, EvalSource, EvalStatus
from tokenmill.store.db import Database
from tokenmill.store.eval_tables import Evaluation, EvaluationResult

DEFAULT_LIST_LIMIT = 20
CARD_RESULTS = 5


def no_such_eval(eval_id: str) -> NotFound:
    return NotFound(f"No evaluation found with id '{eval_id}'.", param="eval_id")


def _info(row: Evaluation, results: list[EvaluationResult]) -> EvalInfo:
    return EvalInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        request=EvalRequest(
            source=EvalSource.from_json(row.source),
            models=tuple(row.models),
            metrics=tuple(row.metrics),
            regex=row.regex,
            limit=row.limit_examples,
            publish=row.publish,
        ),
        status=EvalStatus(row.status),
        created_at=row.created_at,
        progress=row.progress,
        examples=row.examples,
        results={r.model: dict(r.summary) for r in results},
        error=row.error,
        work_item_id=row.work_item_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class EvalRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, info: EvalInfo) -> EvalInfo:
        request = info.request
        with self._db.session() as session:
            session.add(
                Evaluation(
                    id=info.id,
                    tenant_id=info.tenant_id,
                    key_id=info.key_id,
                    source=request.source.as_json(),
                    models=list(request.models),
                    metrics=list(request.metrics),
                    regex=request.regex,
                    limit_examples=request.limit,
                    publish=request.publish,
                    status=info.status.value,
                    progress=0.0,
                    work_item_id=info.work_item_id,
                    created_at=info.created_at,
                )
            )
        return info

    def get(self, tenant_id: str | None, eval_id: str) -> EvalInfo:
        """The tenant's evaluation (None: any tenant's, for a worker or a platform admin)."""
        with self._db.session() as session:
            row = session.get(Evaluation, eval_id)
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                raise no_such_eval(eval_id)
            return _info(row, self._results(session, eval_id))

    def list(
        self, tenant_id: str | None, *, limit: int = DEFAULT_LIST_LIMIT
    ) -> builtins.list[EvalInfo]:
        """Newest first: the tenant's (None: every tenant's)."""
        with self._db.session() as session:
            query = select(Evaluation).order_by(Evaluation.created_at.desc(), Evaluation.id)
            if tenant_id is not None:
                query = query.where(Evaluation.tenant_id == tenant_id)
            rows = session.scalars(query.limit(limit)).all()
            return [_info(row, self._results(session, row.id)) for row in rows]

    def update(self, eval_id: str, status: EvalStatus | None = None, **values: Any) -> EvalInfo:
        """Sets ``values`` (progress, examples, error) and moves to ``status``, stamping when
        it started or finished. A finished evaluation does not move again."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(Evaluation, eval_id, with_for_update=True)
            if row is None:
                raise no_such_eval(eval_id)
            if EvalStatus(row.status) not in EvalStatus.finished():
                for name, value in values.items():
                    setattr(row, name, value)
                if status is not None:
                    row.status = status.value
                    if status == EvalStatus.RUNNING and row.started_at is None:
                        row.started_at = now
                    if status in EvalStatus.finished():
                        row.finished_at = now
            session.flush()
            return _info(row, self._results(session, eval_id))

    def status(self, eval_id: str) -> EvalStatus:
        with self._db.session() as session:
            found = session.scalar(select(Evaluation.status).where(Evaluation.id == eval_id))
            if found is None:
                raise no_such_eval(eval_id)
            return EvalStatus(found)

    def record(self, info: EvalInfo, model: str, summary: dict[str, Any]) -> None:
        """One model's figures; a second record of the same model is ignored."""
        with self._db.session() as session:
            exists = session.scalar(
                select(EvaluationResult.id).where(
                    EvaluationResult.eval_id == info.id, EvaluationResult.model == model
                )
            )
            if exists is None:
                session.add(
                    EvaluationResult(
                        eval_id=info.id,
                        model=model,
                        tenant_id=info.tenant_id,
                        published=info.request.publish,
                        source=info.request.source.as_json(),
                        summary=summary,
                        created_at=self._clock.utcnow(),
                    )
                )

    def card_results(
        self, names: Iterable[str], tenant_id: str | None, limit: int = CARD_RESULTS
    ) -> builtins.list[dict[str, Any]]:
        """The latest results for a model (evaluated by any of ``names``: its id, or its id
        and version) a reader of ``tenant_id`` sees (None: all)."""
        with self._db.session() as session:
            query = select(EvaluationResult).where(EvaluationResult.model.in_(list(names)))
            if tenant_id is not None:
                query = query.where(
                    or_(EvaluationResult.published, EvaluationResult.tenant_id == tenant_id)
                )
            query = query.order_by(EvaluationResult.created_at.desc(), EvaluationResult.id.desc())
            return [
                {
                    "eval_id": r.eval_id,
                    "model": r.model,
                    "source": dict(r.source),
                    "published": r.published,
                    "created_at": int(r.created_at.timestamp()),
                    **dict(r.summary),
                }
                for r in session.scalars(query.limit(limit))
            ]

    @staticmethod
    def _results(session: Any, eval_id: str) -> builtins.list[EvaluationResult]:
        query = select(EvaluationResult).where(EvaluationResult.eval_id == eval_id)
        return builtins.list(session.scalars(query.order_by(EvaluationResult.id)))
