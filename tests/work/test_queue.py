"""The work queue on SQLite and PostgreSQL, with time passed in."""

from __future__ import annotations

import threading

import pytest

from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.db import Database
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue

LEASE = 30.0


@pytest.fixture
def queue(database: Database, clock: ManualClock) -> WorkQueue:
    return WorkQueue(database, clock)


def test_an_item_is_claimed_once_run_and_finished(queue: WorkQueue) -> None:
    item = queue.enqueue("index", {"file": "file-1"}, tenant_id="ten_1")
    assert item.status == WorkStatus.QUEUED and item.attempts == 0
    claimed = queue.claim("w1", ["index"], LEASE)
    assert claimed is not None and claimed.id == item.id
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == (WorkStatus.RUNNING, "w1", 1)
    assert queue.claim("w2", ["index"], LEASE) is None  # leased to w1
    assert queue.heartbeat(item.id, "w1", LEASE, progress=0.5)
    assert queue.complete(item.id, "w1", {"chunks": 12})
    done = queue.get(item.id)
    assert done is not None and done.status == WorkStatus.SUCCEEDED
    assert (done.result, done.progress, done.lease_owner) == ({"chunks": 12}, 1.0, None)
    assert not queue.complete(item.id, "w1")  # finished: no second outcome


def test_claims_follow_priority_then_age_and_only_the_kinds_asked(
    queue: WorkQueue, clock: ManualClock
) -> None:
    old = queue.enqueue("index", {})
    clock.advance(1)
    young = queue.enqueue("index", {})
    urgent = queue.enqueue("index", {}, priority=5)
    other = queue.enqueue("finetune", {})
    order = [queue.claim("w", ["index"], LEASE) for _ in range(4)]
    assert [i.id if i else None for i in order] == [urgent.id, old.id, young.id, None]
    claimed = queue.claim("w", ["finetune"], LEASE)
    assert claimed is not None and claimed.id == other.id


def test_a_delayed_item_waits_until_it_is_due(queue: WorkQueue, clock: ManualClock) -> None:
    queue.enqueue("index", {}, delay_seconds=10)
    assert queue.claim("w", ["index"], LEASE) is None
    clock.advance(10)
    assert queue.claim("w", ["index"], LEASE) is not None


def test_the_same_idempotency_key_gives_the_same_item(queue: WorkQueue) -> None:
    first = queue.enqueue("batch", {"n": 1}, idempotency_key="batch_1")
    again = queue.enqueue("batch", {"n": 2}, idempotency_key="batch_1")
    assert again.id == first.id and again.payload == {"n": 1}
    with pytest.raises(InvalidRequest):
        queue.enqueue("batch", {}, max_attempts=0)


def test_a_failed_attempt_is_retried_after_a_growing_delay_then_fails(
    queue: WorkQueue, clock: ManualClock
) -> None:
    item = queue.enqueue("index", {}, max_attempts=3)
    for attempt, delay in ((1, 2), (2, 4)):
        assert queue.claim("w", ["index"], LEASE) is not None
        failed = queue.fail(item.id, "w", f"boom {attempt}")
        assert failed.status == WorkStatus.QUEUED and failed.error == f"boom {attempt}"
        clock.advance(delay - 0.5)
        assert queue.claim("w", ["index"], LEASE) is None
        clock.advance(0.5)
    assert queue.claim("w", ["index"], LEASE) is not None
    last = queue.fail(item.id, "w", "boom 3")
    assert (last.status, last.attempts) == (WorkStatus.FAILED, 3)
    assert last.finished_at is not None


def test_a_permanent_failure_is_not_retried(queue: WorkQueue) -> None:
    item = queue.enqueue("index", {}, max_attempts=5)
    queue.claim("w", ["index"], LEASE)
    assert queue.fail(item.id, "w", "not a PDF", retryable=False).status == WorkStatus.FAILED


def test_a_dead_workers_item_is_claimed_again_when_its_lease_expires(
    queue: WorkQueue, clock: ManualClock
) -> None:
    item = queue.enqueue("finetune", {}, max_attempts=2)
    assert queue.claim("crashed", ["finetune"], LEASE) is not None
    clock.advance(LEASE - 1)
    assert queue.claim("w2", ["finetune"], LEASE) is None
    clock.advance(2)
    again = queue.claim("w2", ["finetune"], LEASE)
    assert again is not None and (again.lease_owner, again.attempts) == ("w2", 2)
    assert not queue.heartbeat(item.id, "crashed", LEASE)  # the old owner must stop
    assert not queue.complete(item.id, "crashed")
    # The second owner dies too: with no attempts left the item fails, saying why.
    clock.advance(LEASE + 1)
    assert queue.claim("w3", ["finetune"], LEASE) is None
    failed = queue.get(item.id)
    assert failed is not None and failed.status == WorkStatus.FAILED
    assert failed.error is not None and "stopped renewing its lease" in failed.error


def test_cancel_ends_a_queued_item_and_asks_a_running_one_to_stop(queue: WorkQueue) -> None:
    queued = queue.enqueue("index", {})
    assert queue.cancel(queued.id).status == WorkStatus.CANCELLED
    running = queue.enqueue("index", {})
    queue.claim("w", ["index"], LEASE)
    asked = queue.cancel(running.id)
    assert asked.status == WorkStatus.RUNNING and asked.cancel_requested
    assert not queue.heartbeat(running.id, "w", LEASE)  # the worker is told to stop
    assert queue.fail(running.id, "w", "interrupted").status == WorkStatus.FAILED  # no retry
    finished = queue.cancel(running.id)
    assert finished.status == WorkStatus.FAILED
    with pytest.raises(NotFound):
        queue.cancel("wk_missing")


def test_a_cancel_is_acknowledged_by_the_worker(queue: WorkQueue) -> None:
    item = queue.enqueue("index", {})
    queue.claim("w", ["index"], LEASE)
    queue.cancel(item.id)
    assert not queue.acknowledge_cancel(item.id, "someone else")
    assert queue.acknowledge_cancel(item.id, "w")
    assert queue.get(item.id).status == WorkStatus.CANCELLED  # type: ignore[union-attr]


def test_events_are_kept_in_order_and_paged(queue: WorkQueue) -> None:
    item = queue.enqueue("finetune", {})
    queue.event(item.id, "info", "started")
    queue.event(item.id, "metrics", "step 1", {"loss": 2.5})
    queue.event(item.id, "warn", "slow")
    events = queue.events(item.id)
    assert [(e.level, e.message, e.data) for e in events] == [
        ("info", "started", None),
        ("metrics", "step 1", {"loss": 2.5}),
        ("warn", "slow", None),
    ]
    assert [e.message for e in queue.events(item.id, after_id=events[0].id, limit=1)] == ["step 1"]
    with pytest.raises(ValueError):
        queue.event(item.id, "debug", "no such level")


def test_listing_filters_by_kind_tenant_and_status(queue: WorkQueue) -> None:
    a = queue.enqueue("index", {}, tenant_id="ten_a")
    queue.enqueue("index", {}, tenant_id="ten_b")
    queue.enqueue("batch", {}, tenant_id="ten_a")
    assert [i.id for i in queue.list(kind="index", tenant_id="ten_a")] == [a.id]
    assert len(queue.list(status=WorkStatus.QUEUED)) == 3


def test_concurrent_workers_never_claim_the_same_item(database: Database) -> None:
    from tokenmill.clock import SystemClock

    queue = WorkQueue(database, SystemClock())
    ids = {queue.enqueue("index", {"n": n}).id for n in range(24)}
    claimed: list[str] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (item := queue.claim(worker, ["index"], LEASE)) is not None:
            with lock:
                claimed.append(item.id)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)
