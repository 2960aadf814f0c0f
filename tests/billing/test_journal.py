from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from tests.billing.test_usage import T0, usage_event
from tokenmill.billing.journal import LOST_CODE, UsageJournal, open_slot, replay
from tokenmill.billing.usage import UsageEvent


class Collect:
    def __init__(self) -> None:
        self.events: list[UsageEvent] = []
        self.lock = threading.Lock()

    def record(self, event: UsageEvent) -> None:
        with self.lock:
            self.events.append(event)


@dataclass
class Running:
    request_id: str
    tenant_id: str = "ten_1"
    key_id: str = "key_1"
    model: str = "m"
    endpoint: str = "chat.completions"
    stream: bool = True
    service_tier: str = "default"
    app_id: str | None = None
    content_events: int = 0
    prompt_tokens: int = 0


def journal(directory: Path, sink: Collect, **options: float) -> UsageJournal:
    made = UsageJournal(directory, sink, lambda: T0, **options)  # type: ignore[arg-type]
    made.start()
    return made


def test_an_event_is_durable_before_it_goes_to_the_database(tmp_path: Path) -> None:
    sink = Collect()
    log = journal(tmp_path, sink)
    event = usage_event("req-1")
    log.record(event).result(timeout=10)
    assert sink.events == [event]  # handed to the database writer once on disk
    log.close()
    assert replay(tmp_path, lambda e: 0) == [event]  # still on disk: nothing said it is ingested


def test_the_lag_counts_events_not_on_disk_and_not_in_the_database(tmp_path: Path) -> None:
    sink = Collect()
    log = journal(tmp_path, sink)
    assert log.lag() == (0, 0)
    first, second = usage_event("req-1"), usage_event("req-2")
    log.record(first).result(timeout=10)
    log.record(second).result(timeout=10)
    assert log.lag() == (0, 2)  # on disk, and handed on, but not written yet
    log.ingested([first])
    assert log.lag() == (0, 1)
    log.ingested([second])
    assert log.lag() == (0, 0)
    log.close()


def test_replay_finds_finished_and_unfinished_requests(tmp_path: Path) -> None:
    sink = Collect()
    log = journal(tmp_path, sink, progress_interval_seconds=0.01)
    done, lost = Running("req-done"), Running("req-lost", service_tier="priority")
    quiet = Running("req-quiet")
    for running in (done, lost, quiet):
        log.begin(running)
    lost.content_events, lost.prompt_tokens = 7, 30  # the replica said so when it began
    log.record(usage_event("req-done", completion_tokens=3)).result(timeout=10)
    log.record(usage_event("req-other")).result(timeout=10)  # refused before it began
    pause = threading.Event()
    for _ in range(1000):  # the writer journals progress on its own, within an interval
        if b'"completion_tokens":7' in b"".join(p.read_bytes() for p in tmp_path.glob("seg*")):
            break
        pause.wait(0.01)
    log.close()  # like a crash: lost and quiet never finished
    with open(next(tmp_path.glob("segment-*")), "ab") as torn:
        torn.write(b'{"request_id":"req-torn","tena')  # a line cut by the crash
    events = {e.request_id: e for e in replay(tmp_path, lambda e: 100 + e.completion_tokens)}
    assert set(events) == {"req-done", "req-other", "req-lost", "req-quiet"}
    assert events["req-done"].completion_tokens == 3
    assert events["req-done"].cost_micros == 0  # a finished event keeps its own cost
    assert (events["req-lost"].status, events["req-lost"].error_code) == ("error", LOST_CODE)
    assert (events["req-lost"].completion_tokens, events["req-lost"].cost_micros) == (7, 107)
    assert events["req-lost"].prompt_tokens == 30  # billed too: the prompt was processed
    assert events["req-lost"].service_tier == "priority"  # priced in the tier it ran in
    assert events["req-quiet"].completion_tokens == 0


def test_segments_are_deleted_once_everything_in_them_is_ingested(tmp_path: Path) -> None:
    sink = Collect()
    log = journal(tmp_path, sink, segment_bytes=1)  # every write closes its segment
    running = Running("req-a")
    log.begin(running)
    first = usage_event("req-b")
    log.record(first).result(timeout=10)
    log.ingested([first])
    log.record(usage_event("req-a")).result(timeout=10)
    assert len(list(tmp_path.glob("segment-*"))) >= 1  # req-a not in the database yet
    log.ingested(list(sink.events))
    log.close()
    assert list(tmp_path.glob("segment-*")) == []


def test_processes_get_their_own_slot(tmp_path: Path) -> None:
    first, lock = open_slot(tmp_path)
    second, other = open_slot(tmp_path)
    assert first != second
    lock.close()
    again, lock = open_slot(tmp_path)
    assert again == first
    lock.close()
    other.close()


def on_a_full_disk(directory: Path, *numbers: int) -> None:
    """Segments ``numbers`` are written to /dev/full: every write fails with ENOSPC, as on a
    disk with no room left (a real error from the kernel, no root needed)."""
    for number in numbers:
        (directory / f"segment-{number}.jsonl").symlink_to("/dev/full")


def test_a_full_disk_still_meters_and_the_journal_writes_again_once_it_can(
    tmp_path: Path,
) -> None:
    sink = Collect()
    log = UsageJournal(tmp_path, sink, lambda: T0)
    on_a_full_disk(tmp_path, 1, 2)  # the first two segments find the disk full
    log.start()
    log.record(usage_event("req-1")).result(timeout=10)
    log.record(usage_event("req-2")).result(timeout=10)
    assert log.failing
    log.record(usage_event("req-3")).result(timeout=10)  # a new segment, and room again
    assert not log.failing
    assert [e.request_id for e in sink.events] == ["req-1", "req-2", "req-3"]  # all metered
    log.close()
    assert [e.request_id for e in replay(tmp_path, lambda e: 0)] == ["req-3"]  # durable again


def test_metering_stops_while_an_event_off_disk_waits_for_the_database(tmp_path: Path) -> None:
    sink = Collect()
    log = UsageJournal(tmp_path, sink, lambda: T0, monotonic=lambda: 100.0)
    on_a_full_disk(tmp_path, 1)
    log.start()
    lost = usage_event("req-1")
    log.record(lost).result(timeout=10)  # not on disk, and not in the database yet
    assert log.metering_ok(101.9)  # the database has a moment to take it
    assert not log.metering_ok(102.0)  # it has not: a crash now would lose the usage
    log.ingested([lost])
    assert log.metering_ok(102.0)
    durable = usage_event("req-2")
    log.record(durable).result(timeout=10)  # on disk: the database may take its time
    assert not log.failing and log.metering_ok(10_000.0)
    log.close()
