"""Running a batch: the handler of ``batch`` work items (payload ``{"batch_id"}``).

In order: read the input file and validate it (a bad file fails the batch with every bad line
in ``errors``); mark the batch ``in_progress`` with its request count; send the lines that have
no recorded result yet, ``concurrency`` at a time, recording each result as it comes back (so a
batch resumed after a restart, or retried by the queue, never sends a finished line again);
then write the output and error files (purpose ``batch_output``, owned by the tenant) and end
the batch ``completed``.

A line's own failure (a body the model refuses, an unknown model) is an error line, not a
batch failure. Between lines the batch is looked at again: asked to cancel (``cancelling``), no
new line is sent, the lines in flight finish, the files are written with what is done and the
batch ends ``cancelled``; past its ``expires_at``, the same, the lines never sent written as
``batch_expired`` errors, and it ends ``expired``. Sending is injected (``Send``): the platform's
sends each line through the router, metered to the tenant at the batch price.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from tokenmill.batches.lines import BatchRequest, InvalidInput, LineError, parse_input
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult, jsonl, split
from tokenmill.batches.repository import BatchRepository, errors_body
from tokenmill.batches.status import BatchStatus, can_cancel, can_move
from tokenmill.clock import Clock
from tokenmill.errors import Conflict
from tokenmill.files.service import FileService
from tokenmill.work.items import WorkItem
from tokenmill.work.runner import Handler, WorkContext, WorkStopped

KIND = "batch"
OUTPUT_PURPOSE = "batch_output"
DEFAULT_CONCURRENCY = 2

Send = Callable[[BatchInfo, BatchRequest], LineResult]
"""Sends one line for the batch's tenant and returns how it ended (blocking, thread-safe)."""


def batch_handler(
    batches: BatchRepository,
    files: FileService,
    send: Send,
    clock: Clock,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Handler:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")

    def handle(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        batch = batches.load(str(item.payload["batch_id"]))
        try:
            return _handle(batch, context).as_result()
        except WorkStopped:
            raise
        except Exception as error:
            last = item.attempts >= item.max_attempts
            if last and can_move(batches.status(batch.id), BatchStatus.FAILED):
                message = f"The batch could not be run: {type(error).__name__}: {error}"
                _fail(batches, batch.id, [LineError("server_error", message)])
            raise

    def _handle(batch: BatchInfo, context: WorkContext) -> _Ended:
        if batch.status in BatchStatus.finished():
            return _Ended(batch)
        if batch.status in (BatchStatus.FINALIZING, BatchStatus.CANCELLING):
            ending = BatchStatus.COMPLETED
            if batch.status == BatchStatus.CANCELLING:
                ending = BatchStatus.CANCELLED
            return _finish(batches, files, batch.id, [], ending)
        try:
            data = b"".join(files.storage.read(batch.tenant_id, batch.input_file_id))
            requests = parse_input(data, batch.endpoint)
        except FileNotFoundError:
            message = f"The input file {batch.input_file_id} is gone."
            return _Ended(_fail(batches, batch.id, [LineError("invalid_file", message)]))
        except InvalidInput as bad:
            return _Ended(_fail(batches, batch.id, bad.errors))
        if batch.status == BatchStatus.VALIDATING:
            try:
                batch = batches.move(batch.id, BatchStatus.IN_PROGRESS, total=len(requests))
            except Conflict:  # cancelled while it was validated: end it as it is now
                return _handle(batches.load(batch.id), context)
        done = batches.finished_lines(batch.id)
        pending = [r for r in requests if r.line not in done]
        ending = _run(batches, batch, pending, send, clock, context, concurrency)
        left: list[BatchRequest] = []
        if ending == BatchStatus.EXPIRED:
            finished = batches.finished_lines(batch.id)
            left = [r for r in requests if r.line not in finished]
        return _finish(batches, files, batch.id, left, ending)

    return handle


def _fail(batches: BatchRepository, batch_id: str, errors: list[LineError]) -> BatchInfo:
    return batches.move(
        batch_id, BatchStatus.FAILED, errors=errors_body(e.as_openai() for e in errors)
    )


def _run(
    batches: BatchRepository,
    batch: BatchInfo,
    pending: list[BatchRequest],
    send: Send,
    clock: Clock,
    context: WorkContext,
    concurrency: int,
) -> BatchStatus:
    """Sends ``pending``, recording each result; returns how the batch ends: completed,
    cancelled (asked to cancel) or expired (past its window)."""
    total = max(batch.counts.total, 1)
    finished = total - len(pending)
    ending = BatchStatus.COMPLETED
    queue = list(reversed(pending))
    running: set[Future[LineResult]] = set()
    with ThreadPoolExecutor(concurrency, thread_name_prefix=f"{batch.id}-line") as pool:
        while queue or running:
            if queue and ending == BatchStatus.COMPLETED:
                try:
                    ending = _stopping(batches, batch, clock, context)
                except WorkStopped:  # the lines in flight were sent: keep their results
                    _record(batches, batch.id, set(wait(running).done))
                    raise
            while queue and ending == BatchStatus.COMPLETED and len(running) < concurrency:
                running.add(pool.submit(send, batch, queue.pop()))
            if not running:
                break
            ready, running = _first_done(running)
            if any(f.exception() is not None for f in ready):
                ready, running = ready | set(wait(running).done), set()
            finished += _record(batches, batch.id, ready)
            context.progress_fraction = finished / total
    return ending


def _record(batches: BatchRepository, batch_id: str, ready: set[Future[LineResult]]) -> int:
    """Records the lines that ended. When one raised, the caller waited for the others in
    flight: they are recorded too (their calls were made and billed), then the error raised."""
    recorded = 0
    failure: BaseException | None = None
    for future in ready:
        error = future.exception()
        if error is None:
            recorded += batches.record(batch_id, future.result())
        else:
            failure = failure or error
    if failure is not None:
        raise failure
    return recorded


def _first_done(
    running: set[Future[LineResult]],
) -> tuple[set[Future[LineResult]], set[Future[LineResult]]]:
    done, not_done = wait(running, return_when=FIRST_COMPLETED)
    return set(done), set(not_done)


def _stopping(
    batches: BatchRepository, batch: BatchInfo, clock: Clock, context: WorkContext
) -> BatchStatus:
    """COMPLETED to go on; CANCELLED (the batch, or its work item, was cancelled) or EXPIRED
    to send nothing more. Raises ``WorkStopped`` when the worker lost the item (another worker
    runs it now)."""
    status = batches.status(batch.id)
    if status == BatchStatus.CANCELLING:
        return BatchStatus.CANCELLED
    if context.stop.is_set():
        item = context.queue.get(context.item.id)
        if item is not None and item.cancel_requested and can_cancel(status):
            batches.move(batch.id, BatchStatus.CANCELLING)  # its work item was cancelled
            return BatchStatus.CANCELLED
        raise WorkStopped(batch.id)
    if clock.utcnow() >= batch.expires_at:
        return BatchStatus.EXPIRED
    return BatchStatus.COMPLETED


class _Ended:
    def __init__(self, batch: BatchInfo) -> None:
        self.batch = batch

    def as_result(self) -> dict[str, Any]:
        counts = self.batch.counts
        return {"status": self.batch.status.value, **counts.as_openai()}


def finish(batches: BatchRepository, files: FileService, batch_id: str) -> BatchInfo:
    """Ends a ``cancelling`` batch no worker runs: its files hold what is done."""
    return _finish(batches, files, batch_id, [], BatchStatus.CANCELLED).batch


def _finish(
    batches: BatchRepository,
    files: FileService,
    batch_id: str,
    unsent: list[BatchRequest],
    ending: BatchStatus,
) -> _Ended:
    """Writes the output and error files (once), then moves the batch to ``ending``."""
    batch = batches.load(batch_id)
    if ending == BatchStatus.COMPLETED and batch.status == BatchStatus.IN_PROGRESS:
        batch = batches.move(batch.id, BatchStatus.FINALIZING)
    results = batches.results(batch.id)
    results += [
        LineResult.unsent(
            r.line,
            r.custom_id,
            "batch_expired",
            "This request could not be executed before the completion window expired.",
        )
        for r in unsent
    ]
    if batch.output_file_id is None and batch.error_file_id is None:
        good, bad = split(results)
        output = _write(files, batch, "output", good)
        error = _write(files, batch, "error", bad)
        batches.set_files(batch.id, output, error)
    extra: dict[str, Any] = {}
    if unsent:
        extra["failed"] = batch.counts.failed + len(unsent)
    return _Ended(batches.move(batch.id, ending, **extra))


def _write(
    files: FileService, batch: BatchInfo, name: str, results: list[LineResult]
) -> str | None:
    if not results:
        return None
    data = jsonl(batch.id, results)
    info = files.write(
        batch.tenant_id, batch.key_id, f"{batch.id}_{name}.jsonl", OUTPUT_PURPOSE, data
    )
    return info.id
