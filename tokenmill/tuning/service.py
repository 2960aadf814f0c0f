"""The fine-tuning API's operations for one tenant at a time: create (checks the base model and
files, records a ``validating_files`` job, enqueues its run), read, list, events, checkpoints,
cancel, pause and resume. The work itself is ``tuning.execution``'s."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from typing import Any

from tokenmill.clock import Clock
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from tokenmill.files.objects import FileInfo
from tokenmill.files.service import FileService
from tokenmill.gateway.directory import ModelDirectory
from tokenmill.knowledge.stores import Page
from tokenmill.tuning.billing import TrainingBilling
from tokenmill.tuning.objects import CheckpointInfo, FineTuningJobInfo, event_as_openai, new_job_id
from tokenmill.tuning.repository import MAX_LIST_LIMIT, JobRepository, check_limit
from tokenmill.tuning.status import JobStatus, can_move
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue

KIND = "fine_tune"
EVENT_ID = re.compile(r"ftevent-(\d{1,18})")
PURPOSE = "fine-tune"
MAX_ATTEMPTS = 3
TUNABLE_TASKS = frozenset({"chat", "completion"})


def work_key(job: FineTuningJobInfo) -> str:
    """One work item per run of a job: a resumed job runs again under a new key."""
    return f"{KIND}:{job.id}:{job.runs}"


class FineTuningService:
    def __init__(
        self,
        jobs: JobRepository,
        files: FileService,
        queue: WorkQueue,
        directory: ModelDirectory,
        billing: TrainingBilling,
        clock: Clock,
    ) -> None:
        self.jobs = jobs
        self.billing = billing
        self.files = files
        self.queue = queue
        self.directory = directory
        self._clock = clock
        self.withdraw: Callable[[str], None] | None = None  # removes a fine-tune (compose sets)

    def create(
        self,
        principal: Principal,
        *,
        model: str,
        training_file: str,
        validation_file: str | None,
        suffix: str | None,
        seed: int,
        hyperparameters: dict[str, Any],
        metadata: dict[str, str],
    ) -> FineTuningJobInfo:
        entry = self.directory.resolve(model, principal)
        if entry.task not in TUNABLE_TASKS or entry.card is None or entry.id.startswith("ft:"):
            raise InvalidRequest(
                f"The model '{model}' cannot be fine-tuned here: fine-tuning takes a chat or "
                "completion model of the library (not a fine-tuned one).",
                param="model",
                code="model_not_available",
            )
        self._file(principal.tenant_id, training_file, "training_file")
        if validation_file is not None:
            self._file(principal.tenant_id, validation_file, "validation_file")
        job = FineTuningJobInfo(
            id=new_job_id(),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            model=model,
            base_served_name=entry.served_name,
            training_file_id=training_file,
            validation_file_id=validation_file,
            suffix=suffix,
            seed=seed,
            hyperparameters=hyperparameters,
            status=JobStatus.VALIDATING_FILES,
            created_at=self._clock.utcnow(),
            metadata=metadata,
        )
        return self._enqueue(self.jobs.add(job))

    def _file(self, tenant_id: str, file_id: str, param: str) -> FileInfo:
        try:
            upload = self.files.get(tenant_id, file_id)
        except NotFound as missing:
            raise NotFound(missing.message, param=param) from None
        if upload.purpose != PURPOSE:
            raise InvalidRequest(
                f"The file {file_id} has purpose {upload.purpose!r}; fine-tuning takes files "
                f"uploaded with purpose '{PURPOSE}'.",
                param=param,
                code="invalid_file_purpose",
            )
        return upload

    def _enqueue(self, job: FineTuningJobInfo) -> FineTuningJobInfo:
        item = self.queue.enqueue(
            KIND,
            {"job_id": job.id},
            tenant_id=job.tenant_id,
            max_attempts=MAX_ATTEMPTS,
            idempotency_key=work_key(job),
        )
        return self.jobs.update(job.id, work_item_id=item.id)

    def get(self, tenant_id: str, job_id: str) -> FineTuningJobInfo:
        return self.jobs.get(tenant_id, job_id)

    def list(
        self, tenant_id: str | None, *, limit: int, after: str | None, metadata: dict[str, str]
    ) -> Page[FineTuningJobInfo]:
        """Newest first; OpenAI filters a list by ``metadata[k]=v``, and so do we."""
        return self.jobs.list(tenant_id, limit=limit, after=after, metadata=metadata)

    def events(
        self, tenant_id: str, job_id: str, *, limit: int, after: str | None
    ) -> dict[str, Any]:
        """Newest first, as OpenAI lists them; ``after`` is an event id already seen."""
        check_limit(limit)
        job = self.jobs.get(tenant_id, job_id)
        before = None
        if after is not None:
            found = EVENT_ID.fullmatch(after)
            if found is None:
                raise InvalidRequest(f"'{after}' is not an event id.", param="after")
            before = int(found.group(1))
        events = self.queue.latest_events(self._work_items(job), before=before, limit=limit + 1)
        data = [event_as_openai(e) for e in events]
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit}

    def _work_items(self, job: FineTuningJobInfo) -> builtins.list[str]:
        found = []
        for run in range(job.runs + 1):
            item = self.queue.find(f"{KIND}:{job.id}:{run}")
            if item is not None:
                found.append(item.id)
        return found

    def checkpoints(
        self, tenant_id: str, job_id: str, *, limit: int, after: str | None
    ) -> Page[CheckpointInfo]:
        self.jobs.get(tenant_id, job_id)
        return self.jobs.checkpoints(job_id, limit=limit, after=after)

    def cancel(self, tenant_id: str, job_id: str) -> FineTuningJobInfo:
        """A job no worker holds ends ``cancelled`` at once; a running one is stopped by its
        worker within a training step. Either way the tokens trained until then are billed."""
        job = self.jobs.get(tenant_id, job_id)
        if not can_move(job.status, JobStatus.CANCELLED):
            raise Conflict(
                f"Cannot cancel a fine-tuning job that is {job.status.value}.",
                code="invalid_job_status",
            )
        job = self.jobs.update(job.id, control="cancel")
        if job.status == JobStatus.PAUSED or self._stopped_unheld(job):
            job = end_cancelled(self.jobs, self.billing, job)
        return job

    def pause(self, tenant_id: str, job_id: str) -> FineTuningJobInfo:
        """A running job checkpoints and stops (``paused``); a queued one pauses at once."""
        job = self.jobs.get(tenant_id, job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            raise Conflict(
                f"Cannot pause a fine-tuning job that is {job.status.value}.",
                code="invalid_job_status",
            )
        job = self.jobs.update(job.id, control="pause")
        if job.status == JobStatus.QUEUED and self._stopped_unheld(job, running_too=False):
            job = self.jobs.update(job.id, JobStatus.PAUSED, control=None)
        return job

    def _stopped_unheld(self, job: FineTuningJobInfo, *, running_too: bool = True) -> bool:
        """Cancels the job's work item (asking a worker that holds it to stop, when
        ``running_too``); True when no worker holds it any more."""
        if job.work_item_id is None:
            return True
        item = self.queue.cancel(job.work_item_id, running_too=running_too)
        return item.status != WorkStatus.RUNNING

    def delete_model(self, principal: Principal, name: str) -> dict[str, Any]:
        """``DELETE /v1/models/{name}`` for a fine-tune: its tenant's admins (or a platform
        admin) only; anything else a key cannot see is a 404, a model it can see a 403."""
        entry = self.directory.resolve(name, principal)
        if entry.adapter is None or self.withdraw is None:
            raise PermissionDenied(
                f"'{name}' is not a fine-tune; only fine-tunes are deleted here."
            )
        if principal.role == Role.INFERENCE:
            raise PermissionDenied("Deleting a fine-tuned model takes a tenant admin's key.")
        self.withdraw(entry.id)
        return {"id": name, "object": "model", "deleted": True}

    def reconcile(self) -> int:
        """Fails the unfinished jobs whose work item ended without them (its worker was lost
        on the last attempt), releasing what they held; returns how many."""
        ended = 0
        open_statuses = frozenset({JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING})
        for job in self.jobs.list(None, limit=MAX_LIST_LIMIT, statuses=open_statuses).data:
            item = self.queue.get(job.work_item_id) if job.work_item_id else None
            if item is None or item.status not in (WorkStatus.FAILED, WorkStatus.CANCELLED):
                continue
            if job.control == "cancel" or item.status == WorkStatus.CANCELLED:
                end_cancelled(self.jobs, self.billing, job)
            else:
                message = item.error or "the worker training it was lost"
                error = {"code": "training_failed", "message": message, "param": None}
                self.jobs.update(job.id, JobStatus.FAILED, error=error, reserved_micros=0)
            ended += 1
        return ended

    def resume(self, tenant_id: str, job_id: str) -> FineTuningJobInfo:
        """A paused job is queued again and goes on from its last checkpoint."""
        job = self.jobs.get(tenant_id, job_id)
        if job.status != JobStatus.PAUSED:
            raise Conflict(
                f"Cannot resume a fine-tuning job that is {job.status.value}.",
                code="invalid_job_status",
            )
        job = self.jobs.update(job.id, JobStatus.QUEUED, control=None, runs=job.runs + 1)
        return self._enqueue(job)


def end_cancelled(
    jobs: JobRepository, billing: TrainingBilling, job: FineTuningJobInfo
) -> FineTuningJobInfo:
    """Ends ``job`` cancelled, billed for the tokens it trained."""
    cost = billing.settle(job, job.trained_tokens or 0)
    return jobs.update(
        job.id, JobStatus.CANCELLED, control=None, reserved_micros=0, cost_micros=cost
    )
