"""The Batch API's operations: create (checks the input file, records the batch, enqueues its
``batch`` work item), read, list and cancel, for one tenant at a time."""

from __future__ import annotations

from datetime import timedelta

from tokenmill.batches.execution import KIND, finish
from tokenmill.batches.objects import BatchInfo, RequestCounts, new_batch_id
from tokenmill.batches.repository import BatchPage, BatchRepository, no_such_batch
from tokenmill.batches.status import BatchStatus, can_cancel
from tokenmill.clock import Clock
from tokenmill.errors import Conflict, InvalidRequest, NotFound
from tokenmill.files.service import FileService
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue

INPUT_PURPOSE = "batch"
MAX_ATTEMPTS = 3


class BatchService:
    def __init__(
        self, batches: BatchRepository, files: FileService, queue: WorkQueue, clock: Clock
    ) -> None:
        self.batches = batches
        self.files = files
        self.queue = queue
        self._clock = clock

    def create(
        self,
        tenant_id: str,
        key_id: str,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        window: timedelta,
        metadata: dict[str, str],
    ) -> BatchInfo:
        """Records a ``validating`` batch and enqueues its run. The input file must be the
        tenant's (else 404) and uploaded for purpose ``batch`` (else 400)."""
        try:
            upload = self.files.get(tenant_id, input_file_id)
        except NotFound as missing:
            raise NotFound(missing.message, param="input_file_id") from None
        if upload.purpose != INPUT_PURPOSE:
            raise InvalidRequest(
                f"The file {input_file_id} has purpose {upload.purpose!r}; a batch's input "
                "file is uploaded with purpose 'batch'.",
                param="input_file_id",
                code="invalid_file_purpose",
            )
        now = self._clock.utcnow()
        batch_id = new_batch_id()
        item = self.queue.enqueue(
            KIND,
            {"batch_id": batch_id},
            tenant_id=tenant_id,
            max_attempts=MAX_ATTEMPTS,
            idempotency_key=f"batch:{batch_id}",
        )
        return self.batches.add(
            BatchInfo(
                id=batch_id,
                tenant_id=tenant_id,
                key_id=key_id,
                endpoint=endpoint,
                input_file_id=input_file_id,
                completion_window=completion_window,
                status=BatchStatus.VALIDATING,
                counts=RequestCounts(),
                created_at=now,
                expires_at=now + window,
                metadata=metadata,
                work_item_id=item.id,
            )
        )

    def get(self, tenant_id: str, batch_id: str) -> BatchInfo:
        return self.batches.get(tenant_id, batch_id)

    def list(self, tenant_id: str, *, limit: int, after: str | None) -> BatchPage:
        return self.batches.list(tenant_id, limit=limit, after=after)

    def cancel(self, tenant_id: str, batch_id: str) -> BatchInfo:
        """Moves the batch to ``cancelling``; its worker stops sending lines and ends it
        ``cancelled`` with what is done. A batch no worker holds (not started yet, or waiting
        for a retry) ends at once."""
        batch = self.batches.get(tenant_id, batch_id)
        if not can_cancel(batch.status):
            raise Conflict(
                f"Cannot cancel a batch that is {batch.status.value}.",
                code="invalid_batch_status",
            )
        batch = self.batches.move(batch.id, BatchStatus.CANCELLING)
        if batch.work_item_id is None:
            raise no_such_batch(batch_id)
        item = self.queue.cancel(batch.work_item_id)
        if item.status == WorkStatus.CANCELLED:  # no worker has it: end it here
            batch = finish(self.batches, self.files, batch.id)
        return batch
