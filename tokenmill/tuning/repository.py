"""The ``fine_tuning_jobs`` and ``fine_tuning_checkpoints`` tables.

Reads by a client take the tenant: another tenant's job is no job at all (404). A status change
goes through ``status.move`` under a row lock.
"""

from __future__ import annotations

import builtins
from dataclasses import fields
from typing import Any

from sqlalchemy import and_, func, or_, select

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.knowledge.stores import Page
from tokenmill.store.db import Database
from tokenmill.store.tuning_tables import FineTuningCheckpoint, FineTuningJob
from tokenmill.tuning.objects import (
    CheckpointInfo,
    FineTuningJobInfo,
    fine_tuned_name,
    new_checkpoint_id,
)
from tokenmill.tuning.status import JobStatus, move

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
_COLUMNS = {f.name for f in fields(FineTuningJobInfo)} - {"status", "metadata"}


def no_such_job(job_id: str) -> NotFound:
    return NotFound(
        f"No fine-tuning job found with id '{job_id}'.",
        param="fine_tuning_job_id",
        code="not_found",
    )


def _planned_name(row: FineTuningJob) -> str:
    """The fine-tune's name, known from the start (checkpoints are named after it)."""
    return row.fine_tuned_model or fine_tuned_name(
        row.base_served_name.partition("@")[0], row.tenant_id, row.suffix, row.id
    )


def _info(row: FineTuningJob) -> FineTuningJobInfo:
    values = {name: getattr(row, name) for name in _COLUMNS}
    return FineTuningJobInfo(**values, status=JobStatus(row.status), metadata=dict(row.meta or {}))


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidRequest(
            f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
        )


class JobRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, info: FineTuningJobInfo) -> FineTuningJobInfo:
        values = {name: getattr(info, name) for name in _COLUMNS}
        with self._db.session() as session:
            session.add(FineTuningJob(**values, status=info.status.value, meta=info.metadata))
        return info

    def get(self, tenant_id: str, job_id: str) -> FineTuningJobInfo:
        with self._db.session() as session:
            row = session.get(FineTuningJob, job_id)
            if row is None or row.tenant_id != tenant_id:
                raise no_such_job(job_id)
            return _info(row)

    def load(self, job_id: str) -> FineTuningJobInfo:
        """Any tenant's job: for the worker that runs it and for platform admins."""
        with self._db.session() as session:
            row = session.get(FineTuningJob, job_id)
            if row is None:
                raise no_such_job(job_id)
            return _info(row)

    def list(
        self,
        tenant_id: str | None,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        after: str | None = None,
        statuses: frozenset[JobStatus] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Page[FineTuningJobInfo]:
        """Newest first; ``after`` is the last id already seen; ``tenant_id`` None: all."""
        check_limit(limit)
        query = select(FineTuningJob)
        if tenant_id is not None:
            query = query.where(FineTuningJob.tenant_id == tenant_id)
        if statuses is not None:
            query = query.where(FineTuningJob.status.in_([s.value for s in statuses]))
        for key, value in (metadata or {}).items():
            query = query.where(FineTuningJob.meta[key].as_string() == value)
        with self._db.session() as session:
            if after is not None:
                cursor = session.get(FineTuningJob, after)
                if cursor is None or tenant_id not in (None, cursor.tenant_id):
                    raise InvalidRequest(f"No fine-tuning job with id '{after}'.", param="after")
                query = query.where(
                    or_(
                        FineTuningJob.created_at < cursor.created_at,
                        and_(
                            FineTuningJob.created_at == cursor.created_at,
                            FineTuningJob.id < cursor.id,
                        ),
                    )
                )
            query = query.order_by(FineTuningJob.created_at.desc(), FineTuningJob.id.desc())
            rows = builtins.list(session.scalars(query.limit(limit + 1)))
        return Page([_info(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def update(
        self, job_id: str, target: JobStatus | None = None, **changes: Any
    ) -> FineTuningJobInfo:
        """Sets ``changes`` (columns by their ``FineTuningJobInfo`` names) and, when given,
        moves the job to ``target`` (409 when it cannot go there)."""
        unknown = set(changes) - _COLUMNS
        if unknown:
            raise ValueError(f"not a job column: {sorted(unknown)}")
        with self._db.session() as session:
            row = session.get(FineTuningJob, job_id, with_for_update=True)
            if row is None:
                raise no_such_job(job_id)
            if target is not None:
                row.status = move(JobStatus(row.status), target).value
                if target in JobStatus.finished():
                    row.finished_at = self._clock.utcnow()
            for name, value in changes.items():
                setattr(row, name, value)
            session.flush()
            return _info(row)

    def held_micros(self, tenant_id: str, *, besides: str) -> int:
        """What the tenant's other unfinished jobs hold of its credit."""
        open_statuses = [s.value for s in JobStatus if s not in JobStatus.finished()]
        query = select(func.coalesce(func.sum(FineTuningJob.reserved_micros), 0)).where(
            FineTuningJob.tenant_id == tenant_id,
            FineTuningJob.id != besides,
            FineTuningJob.status.in_(open_statuses),
        )
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def add_checkpoint(
        self, job_id: str, step: int, metrics: dict[str, Any], path: str
    ) -> CheckpointInfo:
        """Records a checkpoint once per step: recording a step again returns the first."""
        with self._db.session() as session:
            found = session.scalars(
                select(FineTuningCheckpoint).where(
                    FineTuningCheckpoint.job_id == job_id, FineTuningCheckpoint.step == step
                )
            ).one_or_none()
            if found is None:
                found = FineTuningCheckpoint(
                    id=new_checkpoint_id(),
                    job_id=job_id,
                    step=step,
                    metrics=metrics,
                    path=path,
                    created_at=self._clock.utcnow(),
                )
                session.add(found)
                session.flush()
            return self._checkpoint(session, found)

    def checkpoints(
        self, job_id: str, *, limit: int = 10, after: str | None = None
    ) -> Page[CheckpointInfo]:
        """Newest (highest step) first."""
        check_limit(limit)
        query = select(FineTuningCheckpoint).where(FineTuningCheckpoint.job_id == job_id)
        with self._db.session() as session:
            if after is not None:
                cursor = session.get(FineTuningCheckpoint, after)
                if cursor is None or cursor.job_id != job_id:
                    raise InvalidRequest(f"No checkpoint with id '{after}'.", param="after")
                query = query.where(FineTuningCheckpoint.step < cursor.step)
            query = query.order_by(FineTuningCheckpoint.step.desc()).limit(limit + 1)
            rows = builtins.list(session.scalars(query))
            data = [self._checkpoint(session, r) for r in rows[:limit]]
        return Page(data, has_more=len(rows) > limit)

    @staticmethod
    def _checkpoint(session: Any, row: FineTuningCheckpoint) -> CheckpointInfo:
        job = session.get(FineTuningJob, row.job_id)
        assert job is not None  # a checkpoint's job is never deleted
        return CheckpointInfo(
            id=row.id,
            job_id=row.job_id,
            step=row.step,
            metrics=dict(row.metrics),
            path=row.path,
            created_at=row.created_at,
            fine_tuned_model=_planned_name(job),
        )
