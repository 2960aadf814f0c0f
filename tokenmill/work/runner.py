"""A worker: claims items of the kinds it has handlers for, runs each, and reports the outcome.

A handler is a plain function ``(item, context) -> result``. It reports through the context
(``progress``, ``event``) and calls ``context.check()`` between steps: that raises
``WorkStopped`` when the item was cancelled or its lease was lost, so long work stops within a
heartbeat. While a handler runs, a heartbeat thread renews the lease every third of it (at
least every ``HEARTBEAT_SECONDS``, so a cancel is seen within seconds).
Raising ``PermanentFailure`` fails the item without retries; any other exception is retried.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tokenmill.work.items import WorkItem
from tokenmill.work.queue import WorkQueue

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0


class WorkStopped(Exception):
    """The item was cancelled, or its lease went to another worker: stop working on it."""


class PermanentFailure(Exception):
    """A failure that another attempt would repeat (bad input): fail without retrying."""


class WorkContext:
    def __init__(self, queue: WorkQueue, item: WorkItem, worker: str) -> None:
        self.queue = queue
        self.item = item
        self.worker = worker
        self.stop = threading.Event()
        self.cancelled = False
        self.progress_fraction: float | None = None

    def check(self) -> None:
        """Raises ``WorkStopped`` once the item should stop."""
        if self.stop.is_set():
            raise WorkStopped(self.item.id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Records how far the item is (0..1), and says so in an event when ``message``."""
        self.progress_fraction = fraction
        if message:
            self.event("info", message, {"progress": fraction})
        self.check()

    def event(self, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.queue.event(self.item.id, level, message, data)


Handler = Callable[[WorkItem, WorkContext], dict[str, Any] | None]


class WorkRunner:
    def __init__(
        self,
        queue: WorkQueue,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str | None = None,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        self.queue = queue
        self.handlers = dict(handlers)
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        )
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds

    def run_once(self) -> WorkItem | None:
        """Claims and runs one item in this thread; returns it as it ended (None: no work)."""
        item = self.queue.claim(self.worker_id, list(self.handlers), self.lease_seconds)
        if item is None:
            return None
        context = WorkContext(self.queue, item, self.worker_id)
        beating = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(context, beating), name=f"heartbeat-{item.id}"
        )
        beat.start()
        try:
            self._run(item, context)
        finally:
            beating.set()
            beat.join()
        return self.queue.get(item.id)

    def _run(self, item: WorkItem, context: WorkContext) -> None:
        try:
            result = self.handlers[item.kind](item, context)
        except WorkStopped:
            if not self.queue.acknowledge_cancel(item.id, self.worker_id):
                log.warning("%s lost its lease on %s", self.worker_id, item.id)
            return
        except PermanentFailure as error:
            self.queue.fail(item.id, self.worker_id, str(error), retryable=False)
            return
        except Exception as error:
            log.exception("work item %s (%s) failed", item.id, item.kind)
            self.queue.fail(item.id, self.worker_id, f"{type(error).__name__}: {error}")
            return
        if not self.queue.complete(item.id, self.worker_id, result):
            log.warning("%s finished %s after losing its lease", self.worker_id, item.id)

    def _heartbeat(self, context: WorkContext, done: threading.Event) -> None:
        interval = min(self.lease_seconds / 3, HEARTBEAT_SECONDS)
        while not done.wait(interval):
            keep_going = self.queue.heartbeat(
                context.item.id, self.worker_id, self.lease_seconds, context.progress_fraction
            )
            if not keep_going:
                context.stop.set()
                return

    def run(self, stop: threading.Event) -> None:
        """Runs items until ``stop`` is set, waiting ``poll_seconds`` when there are none."""
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # the database went away for a moment: try again later
                log.exception("the work loop of %s failed; retrying", self.worker_id)
                ran = None
            if ran is None:
                stop.wait(self.poll_seconds)
