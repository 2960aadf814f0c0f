from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy.exc import DataError, OperationalError

from tokenmill.billing.recorder import UsageRecorder
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.store.db import Database

from .test_usage import usage_event

# Long enough that nothing is written by the timer while a test looks; flush() and close()
# must not wait for it.
LINGER_SECONDS = 60.0


@pytest.fixture
def usage(database: Database) -> UsageRepository:
    return UsageRepository(database)


@pytest.fixture
def recorder(usage: UsageRepository) -> Iterator[UsageRecorder]:
    recorder = UsageRecorder(usage, LINGER_SECONDS)
    yield recorder
    recorder.close()


def test_flush_returns_once_rows_are_visible(
    recorder: UsageRecorder, usage: UsageRepository
) -> None:
    for i in range(10):
        recorder.record(usage_event(f"req-{i}"))

    assert recorder.flush()

    assert len(usage.list()) == 10
    assert recorder.pending == 0


def test_flush_with_nothing_recorded(recorder: UsageRecorder) -> None:
    assert recorder.flush()


async def test_aflush_from_the_event_loop(recorder: UsageRecorder, usage: UsageRepository) -> None:
    recorder.record(usage_event("req-1"))

    assert await recorder.aflush()

    assert usage.get("req-1") is not None


def test_close_flushes(usage: UsageRepository) -> None:
    recorder = UsageRecorder(usage, LINGER_SECONDS)
    for i in range(5):
        recorder.record(usage_event(f"req-{i}"))

    assert recorder.close()

    assert len(usage.list()) == 5
    with pytest.raises(RuntimeError, match="closed"):
        recorder.record(usage_event("late"))


def test_writes_on_its_own_after_the_interval(usage: UsageRepository) -> None:
    recorder = UsageRecorder(usage, 0.01)
    try:
        recorder.record(usage_event("req-1"))
        done = threading.Event()

        def watch() -> None:
            while usage.get("req-1") is None:
                done.wait(0.01)
            done.set()

        threading.Thread(target=watch, daemon=True).start()
        assert done.wait(30)
    finally:
        recorder.close()


class CountingStore:
    def __init__(self, repo: UsageRepository) -> None:
        self.repo = repo
        self.batches: list[int] = []

    def insert_many(self, events: Sequence[UsageEvent]) -> int:
        self.batches.append(len(events))
        return self.repo.insert_many(events)


def test_thousands_of_events_in_batches(usage: UsageRepository) -> None:
    store = CountingStore(usage)
    recorder = UsageRecorder(store, LINGER_SECONDS, batch_size=250)
    for i in range(3000):
        recorder.record(usage_event(f"req-{i}"))

    assert recorder.flush()
    assert recorder.close()

    assert sum(store.batches) == 3000
    assert max(store.batches) <= 250
    assert len(store.batches) >= 12
    assert len(usage.list(limit=10_000)) == 3000


async def test_recording_from_many_tasks_and_threads(usage: UsageRepository) -> None:
    recorder = UsageRecorder(usage, 0.001, batch_size=64)

    async def task(n: int) -> None:
        for i in range(50):
            recorder.record(usage_event(f"task-{n}-{i}"))
            await asyncio.sleep(0)

    def thread(n: int) -> None:
        for i in range(200):
            recorder.record(usage_event(f"thread-{n}-{i}"))

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    await asyncio.gather(*(task(n) for n in range(10)))
    for t in threads:
        t.join()

    assert await recorder.aflush()
    recorder.close()
    assert len(usage.list(limit=10_000)) == 10 * 50 + 3 * 200


class FlakyStore:
    """Fails the first ``failures`` writes as an unreachable database would."""

    def __init__(self, repo: UsageRepository, failures: int) -> None:
        self.repo = repo
        self.failures = failures
        self.attempts = 0

    def insert_many(self, events: Sequence[UsageEvent]) -> int:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OperationalError("INSERT", {}, ConnectionError("connection refused"))
        return self.repo.insert_many(events)


def test_failed_writes_are_retried(
    usage: UsageRepository, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(usage, failures=3)
    recorder = UsageRecorder(store, LINGER_SECONDS, first_retry_delay_seconds=0.001)
    for i in range(5):
        recorder.record(usage_event(f"req-{i}"))

    assert recorder.flush()
    recorder.close()

    assert store.attempts == 4
    assert len(usage.list()) == 5
    assert recorder.dead_letters == ()
    assert caplog.text.count("retrying") == 3


def test_close_gives_up_on_a_dead_database_loudly(
    usage: UsageRepository, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(usage, failures=10**9)
    recorder = UsageRecorder(
        store, LINGER_SECONDS, first_retry_delay_seconds=0.001, max_retry_delay_seconds=0.01
    )
    recorder.record(usage_event("req-1"))

    assert not recorder.flush(timeout_seconds=0.05)
    assert not recorder.close(timeout_seconds=0.05)

    assert [e.request_id for e in recorder.unwritten()] == ["req-1"]
    assert "not written: req-1" in caplog.text


class PickyStore:
    """Refuses any batch holding a 'poison' event, as PostgreSQL refuses a bad value."""

    def __init__(self, repo: UsageRepository) -> None:
        self.repo = repo

    def insert_many(self, events: Sequence[UsageEvent]) -> int:
        if any(e.model == "poison" for e in events):
            raise DataError("INSERT", {}, ValueError("value out of range"))
        return self.repo.insert_many(events)


def test_a_refused_event_is_set_aside_not_the_batch(
    usage: UsageRepository, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = UsageRecorder(PickyStore(usage), LINGER_SECONDS)
    recorder.record(usage_event("req-1"))
    recorder.record(usage_event("req-bad", model="poison"))
    recorder.record(usage_event("req-2"))

    assert recorder.flush()
    recorder.close()

    assert sorted(e.request_id for e in usage.list()) == ["req-1", "req-2"]
    assert [e.request_id for e in recorder.dead_letters] == ["req-bad"]
    assert "req-bad" in caplog.text
