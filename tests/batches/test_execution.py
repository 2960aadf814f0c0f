"""Running batches with the work queue and a stand-in for the model call: a resumed batch
never sends a recorded line again, cancelling and expiring end it with what is done, and no
more lines are in flight than its concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.gateway.conftest import two_tenants
from tokenmill.batches.execution import KIND, batch_handler
from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult
from tokenmill.batches.repository import BatchRepository
from tokenmill.batches.service import BatchService
from tokenmill.batches.status import BatchStatus
from tokenmill.clock import ManualClock
from tokenmill.control.keys import KeyRepository
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.store.tables import WorkItem as WorkItemRow
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

ENDPOINT = "/v1/embeddings"
Send = Callable[[BatchInfo, BatchRequest], LineResult]


@dataclass
class Bench:
    service: BatchService
    files: FileService
    clock: ManualClock
    tenant_id: str
    key_id: str
    sent: list[str]

    def create(self, *custom_ids: str) -> BatchInfo:
        lines = [
            {"custom_id": c, "method": "POST", "url": ENDPOINT, "body": {"model": "m", "input": c}}
            for c in custom_ids
        ]
        data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
        upload = self.files.write(self.tenant_id, self.key_id, "in.jsonl", "batch", data)
        return self.service.create(
            self.tenant_id,
            self.key_id,
            input_file_id=upload.id,
            endpoint=ENDPOINT,
            completion_window="24h",
            window=timedelta(hours=24),
            metadata={},
        )

    def runner(self, send: Send, concurrency: int = 2) -> WorkRunner:
        def counted(batch: BatchInfo, request: BatchRequest) -> LineResult:
            self.sent.append(request.custom_id)
            return send(batch, request)

        handler = batch_handler(
            self.service.batches, self.files, counted, self.clock, concurrency=concurrency
        )
        return WorkRunner(self.service.queue, {KIND: handler})

    def lines(self, file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        _, chunks = self.files.content(self.tenant_id, file_id)
        return [orjson.loads(x) for x in b"".join(chunks).splitlines()]


def answer(batch: BatchInfo, request: BatchRequest) -> LineResult:
    return LineResult.answered(request.line, request.custom_id, 200, "req", {"data": []})


@pytest.fixture
def bench(database: Database, tmp_path: Path, clock: ManualClock) -> Bench:
    _, _, tenant_id = two_tenants(database, clock)
    key_id = KeyRepository(database, clock).list(tenant_id)[0].id
    files = FileService.build(Settings(data_dir=tmp_path), database, clock)
    service = BatchService(
        BatchRepository(database, clock), files, WorkQueue(database, clock), clock
    )
    return Bench(service, files, clock, tenant_id, key_id, [])


def test_a_resumed_batch_never_sends_a_recorded_line_again(bench: Bench) -> None:
    batch = bench.create("a", "b", "c", "d")
    broken = {"c"}

    def flaky(batch: BatchInfo, request: BatchRequest) -> LineResult:
        if request.custom_id in broken:
            broken.discard(request.custom_id)
            raise ConnectionError("the replica went away")
        return answer(batch, request)

    runner = bench.runner(flaky)
    first = runner.run_once()
    assert first is not None and first.status == WorkStatus.QUEUED  # to be retried
    midway = bench.service.get(bench.tenant_id, batch.id)
    assert midway.status == BatchStatus.IN_PROGRESS
    assert midway.counts.total == 4 and "c" in bench.sent
    assert midway.counts.completed == len(bench.sent) - 1  # all but c, lines in flight too

    bench.clock.advance(60)
    second = runner.run_once()
    assert second is not None and second.status == WorkStatus.SUCCEEDED
    assert sorted(bench.sent) == ["a", "b", "c", "c", "d"]  # only the failed line twice
    done = bench.service.get(bench.tenant_id, batch.id)
    assert done.status == BatchStatus.COMPLETED and done.counts.completed == 4
    assert [x["custom_id"] for x in bench.lines(done.output_file_id)] == ["a", "b", "c", "d"]


def test_cancelling_a_running_batch_sends_no_more_lines(bench: Bench) -> None:
    batch = bench.create("a", "b", "c")

    def cancel_on_first(sent: BatchInfo, request: BatchRequest) -> LineResult:
        if request.custom_id == "a":
            assert bench.service.cancel(bench.tenant_id, batch.id).status == "cancelling"
        return answer(sent, request)

    item = bench.runner(cancel_on_first, concurrency=1).run_once()
    assert item is not None and item.finished
    assert bench.sent == ["a"]
    done = bench.service.get(bench.tenant_id, batch.id)
    assert done.status == BatchStatus.CANCELLED and done.times["cancelled_at"] is not None
    assert done.counts.completed == 1 and done.error_file_id is None
    assert [x["custom_id"] for x in bench.lines(done.output_file_id)] == ["a"]


def test_a_batch_past_its_window_expires_with_the_rest_as_errors(bench: Bench) -> None:
    batch = bench.create("a", "b", "c")

    def slow(sent: BatchInfo, request: BatchRequest) -> LineResult:
        bench.clock.advance(25 * 3600)
        return answer(sent, request)

    bench.runner(slow, concurrency=1).run_once()
    assert bench.sent == ["a"]
    done = bench.service.get(bench.tenant_id, batch.id)
    assert done.status == BatchStatus.EXPIRED and done.times["expired_at"] is not None
    assert (done.counts.completed, done.counts.failed) == (1, 2)
    errors = bench.lines(done.error_file_id)
    assert [(x["custom_id"], x["error"]["code"]) for x in errors] == [
        ("b", "batch_expired"),
        ("c", "batch_expired"),
    ]


def test_no_more_lines_in_flight_than_the_concurrency(bench: Bench) -> None:
    bench.create(*(f"line-{i}" for i in range(8)))
    lock = threading.Lock()
    in_flight, most = 0, 0
    overlap = threading.Barrier(2, timeout=5)

    def counted(sent: BatchInfo, request: BatchRequest) -> LineResult:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        overlap.wait()  # two lines at once, every time
        with lock:
            in_flight -= 1
        return answer(sent, request)

    item = bench.runner(counted, concurrency=2).run_once()
    assert item is not None and item.status == WorkStatus.SUCCEEDED, item.error
    assert most == 2 and len(bench.sent) == 8


def test_a_batch_cancelled_while_it_is_validated_ends_cancelled(bench: Bench) -> None:
    batch = bench.create("a", "b")
    files = bench.files
    read = files.storage.read

    def cancelled_meanwhile(tenant_id: str, file_id: str) -> Any:
        bench.service.cancel(bench.tenant_id, batch.id)
        return read(tenant_id, file_id)

    files.storage.read = cancelled_meanwhile  # type: ignore[method-assign]
    item = bench.runner(answer).run_once()
    assert item is not None and item.finished and item.attempts == 1
    done = bench.service.get(bench.tenant_id, batch.id)
    assert done.status == BatchStatus.CANCELLED and bench.sent == []


def test_a_batch_out_of_attempts_is_failed_with_the_reason(bench: Bench) -> None:
    batch = bench.create("a")

    def down(sent: BatchInfo, request: BatchRequest) -> LineResult:
        raise ConnectionError("no replica answers")

    runner = bench.runner(down)
    for _ in range(3):
        item = runner.run_once()
        assert item is not None
        bench.clock.advance(600)
    assert item.status == WorkStatus.FAILED
    failed = bench.service.get(bench.tenant_id, batch.id)
    assert failed.status == BatchStatus.FAILED and failed.errors is not None
    assert failed.errors[0]["code"] == "server_error"
    assert "no replica answers" in failed.errors[0]["message"]


def test_cancelling_its_work_item_cancels_the_batch(bench: Bench) -> None:
    batch = bench.create("a", "b", "c")

    def cancel_item_on_first(sent: BatchInfo, request: BatchRequest) -> LineResult:
        if request.custom_id == "a":
            assert sent.work_item_id is not None
            bench.service.queue.cancel(sent.work_item_id)  # as the admin's work API does
            time.sleep(0.4)  # a heartbeat (every 0.1 s here) sees it
        return answer(sent, request)

    handler = batch_handler(
        bench.service.batches, bench.files, cancel_item_on_first, bench.clock, concurrency=1
    )
    item = WorkRunner(bench.service.queue, {KIND: handler}, lease_seconds=0.3).run_once()
    assert item is not None and item.finished
    done = bench.service.get(bench.tenant_id, batch.id)
    assert done.status == BatchStatus.CANCELLED and done.counts.completed == 1


def test_a_worker_that_lost_its_lease_keeps_the_results_of_lines_in_flight(
    bench: Bench, database: Database
) -> None:
    batch = bench.create(*"abcdefghij")

    def steal_on_first(sent: BatchInfo, request: BatchRequest) -> LineResult:
        bench.sent.append(request.custom_id)
        if request.custom_id == "a":
            with database.session() as session:  # another worker took the item over
                row = session.get(WorkItemRow, sent.work_item_id)
                assert row is not None
                row.lease_owner = "another-worker"
            time.sleep(0.5)  # still in flight when this worker notices
        else:
            time.sleep(0.05)
        return answer(sent, request)

    handler = batch_handler(
        bench.service.batches, bench.files, steal_on_first, bench.clock, concurrency=2
    )
    WorkRunner(bench.service.queue, {KIND: handler}, lease_seconds=0.3).run_once()
    assert 2 <= len(bench.sent) < 10  # it stopped sending
    recorded = bench.service.batches.finished_lines(batch.id)
    assert recorded == set(range(1, len(bench.sent) + 1))  # "a" (line 1) among them
