"""Workers running real handlers in threads against the queue in the database."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tokenmill.clock import SystemClock
from tokenmill.store.db import Database
from tokenmill.work.items import WorkItem, WorkStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import PermanentFailure, WorkContext, WorkRunner

LEASE = 0.6  # heartbeats every 0.2 s


@pytest.fixture
def queue(database: Database) -> WorkQueue:
    return WorkQueue(database, SystemClock())


def test_a_handler_reports_progress_and_its_result(queue: WorkQueue) -> None:
    def index(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        for n in range(3):
            context.progress((n + 1) / 3, f"chunk {n + 1} of 3")
        return {"chunks": 3, "file": item.payload["file"]}

    item = queue.enqueue("index", {"file": "file-1"})
    ended = WorkRunner(queue, {"index": index}, lease_seconds=LEASE).run_once()
    assert ended is not None and ended.id == item.id
    assert (ended.status, ended.result) == (WorkStatus.SUCCEEDED, {"chunks": 3, "file": "file-1"})
    assert [e.message for e in queue.events(item.id)] == [f"chunk {n} of 3" for n in (1, 2, 3)]
    assert WorkRunner(queue, {"index": index}).run_once() is None


def test_an_exception_is_retried_and_a_permanent_failure_is_not(queue: WorkQueue) -> None:
    calls: list[str] = []

    def flaky(item: WorkItem, context: WorkContext) -> None:
        calls.append(item.id)
        raise ConnectionError("embeddings replica went away")

    def refuse(item: WorkItem, context: WorkContext) -> None:
        raise PermanentFailure("the file is not a PDF")

    retried = queue.enqueue("flaky", {}, max_attempts=3)
    runner = WorkRunner(queue, {"flaky": flaky, "refuse": refuse}, lease_seconds=LEASE)
    ended = runner.run_once()
    assert ended is not None and ended.status == WorkStatus.QUEUED
    assert ended.error == "ConnectionError: embeddings replica went away"
    refused = queue.enqueue("refuse", {}, max_attempts=3)
    assert runner.run_once() is not None  # the flaky one is not due yet: the refusal runs
    final = queue.get(refused.id)
    assert final is not None and (final.status, final.attempts) == (WorkStatus.FAILED, 1)
    assert calls == [retried.id]


def test_a_cancelled_item_stops_within_a_heartbeat(queue: WorkQueue) -> None:
    started = threading.Event()

    def long_work(item: WorkItem, context: WorkContext) -> None:
        started.set()
        for _ in range(500):  # 50 s unless stopped
            context.check()
            time.sleep(0.1)

    item = queue.enqueue("finetune", {})
    runner = WorkRunner(queue, {"finetune": long_work}, lease_seconds=LEASE)
    outcome: list[WorkItem | None] = []
    thread = threading.Thread(target=lambda: outcome.append(runner.run_once()))
    thread.start()
    assert started.wait(10)
    asked = time.monotonic()
    queue.cancel(item.id)
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2
    assert outcome[0] is not None and outcome[0].status == WorkStatus.CANCELLED


def test_the_loop_runs_items_until_stopped(queue: WorkQueue) -> None:
    done: list[int] = []
    for n in range(5):
        queue.enqueue("count", {"n": n})
    stop = threading.Event()

    def count(item: WorkItem, context: WorkContext) -> None:
        done.append(item.payload["n"])
        if len(done) == 5:
            stop.set()

    runner = WorkRunner(queue, {"count": count}, lease_seconds=LEASE, poll_seconds=0.05)
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    thread.join(20)
    assert not thread.is_alive() and sorted(done) == [0, 1, 2, 3, 4]


def test_a_worker_needs_handlers(queue: WorkQueue) -> None:
    with pytest.raises(ValueError):
        WorkRunner(queue, {})
