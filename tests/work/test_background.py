"""A work runner as a gateway background loop: runs items in its thread, stops on cancel."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tokenmill.clock import SystemClock
from tokenmill.store.db import Database
from tokenmill.work.background import ThreadedWorker
from tokenmill.work.items import WorkItem, WorkStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkContext, WorkRunner


async def test_runs_items_off_the_event_loop_and_stops_when_cancelled(database: Database) -> None:
    queue = WorkQueue(database, SystemClock())
    threads: list[str] = []

    def handle(item: WorkItem, context: WorkContext) -> None:
        threads.append(threading.current_thread().name)

    worker = ThreadedWorker(WorkRunner(queue, {"job": handle}, poll_seconds=0.05))
    task = asyncio.create_task(worker.run())
    item = queue.enqueue("job", {})
    for _ in range(200):
        ended = queue.get(item.id)
        if ended is not None and ended.status == WorkStatus.SUCCEEDED:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the item never ran")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert worker.stop.is_set()
    assert threads and threads[0].startswith("work-")
    assert not any(t.name.startswith("work-") for t in threading.enumerate())
