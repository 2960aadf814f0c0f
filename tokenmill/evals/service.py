"""Evaluations' operations: create (checks the source, records the evaluation, enqueues its
``eval`` work item), read, list and cancel, one tenant at a time (None: a platform admin's
view of every tenant), and the figures a model card shows."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from tokenmill.clock import Clock
from tokenmill.errors import Conflict
from tokenmill.evals.execution import KIND
from tokenmill.evals.objects import EvalInfo, EvalRequest, EvalStatus, new_eval_id
from tokenmill.evals.repository import EvalRepository
from tokenmill.evals.sources import check_file
from tokenmill.files.service import FileService
from tokenmill.work.queue import WorkQueue

MAX_ATTEMPTS = 3


class EvalService:
    def __init__(
        self, evals: EvalRepository, files: FileService, queue: WorkQueue, clock: Clock
    ) -> None:
        self.evals = evals
        self.files = files
        self.queue = queue
        self._clock = clock

    def create(self, tenant_id: str, key_id: str, request: EvalRequest) -> EvalInfo:
        """A ``queued`` evaluation run as ``key_id``. Models are checked by the caller."""
        check_file(self.files, tenant_id, request.source)
        eval_id = new_eval_id()
        item = self.queue.enqueue(
            KIND,
            {"eval_id": eval_id},
            tenant_id=tenant_id,
            max_attempts=MAX_ATTEMPTS,
            idempotency_key=f"eval:{eval_id}",
        )
        return self.evals.add(
            EvalInfo(
                id=eval_id,
                tenant_id=tenant_id,
                key_id=key_id,
                request=request,
                status=EvalStatus.QUEUED,
                created_at=self._clock.utcnow(),
                work_item_id=item.id,
            )
        )

    def get(self, tenant_id: str | None, eval_id: str) -> EvalInfo:
        return self.evals.get(tenant_id, eval_id)

    def list(self, tenant_id: str | None, *, limit: int = 20) -> builtins.list[EvalInfo]:
        return self.evals.list(tenant_id, limit=limit)

    def cancel(self, tenant_id: str | None, eval_id: str) -> EvalInfo:
        """Ends it ``cancelled`` at once; its worker stops at the next example."""
        info = self.evals.get(tenant_id, eval_id)
        if info.status in EvalStatus.finished():
            raise Conflict(
                f"Cannot cancel an evaluation that is {info.status.value}.",
                code="invalid_eval_status",
            )
        info = self.evals.update(info.id, EvalStatus.CANCELLED)
        if info.work_item_id is not None:
            self.queue.cancel(info.work_item_id)
        return info

    def card_results(
        self, names: Iterable[str], tenant_id: str | None
    ) -> builtins.list[dict[str, Any]]:
        """For a model card: the latest figures its reader may see (None: every one), of the
        model evaluated by any of ``names``."""
        return self.evals.card_results(names, tenant_id)
