"""The durable usage journal: every usage event is on disk before its response completes.

Usage events are appended to a local file and fsynced in groups by one writer thread
(group commit: whatever arrived while the last fsync ran is written with the next), and only
then handed to the ``UsageRecorder`` for the database. ``record`` returns a future that is
done once the event is durable; the gateway waits on it before sending a response's final
bytes.

A request that is running is in the journal too: ``begin`` writes a start record, and the
writer adds progress records (tokens streamed so far) for running streams every
``progress_interval_seconds``. So after a crash (kill -9), ``replay`` finds every request:
finished ones with their event, unfinished ones as an ``error`` event
(``gateway_restarted``) with the tokens last recorded. Ingestion is idempotent by request
id, so replaying what the database already holds counts nothing twice.

Files: ``segment-<n>.jsonl`` in the journal directory, one JSON object a line. A segment
is deleted once it is closed and every request in it has its event in the database.
Each gateway process holds a lock on its own journal directory (``slot``), so processes
sharing a data directory never share a journal, and a restarted one replays its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from tokenmill.billing.usage import UsageEvent

log = logging.getLogger(__name__)

SEGMENT_BYTES = 8 * 1024 * 1024

# (request id, line, the event if it is one)
_Queued = tuple[str, bytes, "UsageEvent | None"]


class Durable:
    """What ``record`` returns: await it (or call ``result``) until the event is on disk."""

    __slots__ = ("_journal", "seq")

    def __init__(self, journal: UsageJournal, seq: int) -> None:
        self._journal = journal
        self.seq = seq

    def __await__(self) -> Generator[Any, None, None]:
        return self._journal.wait_durable(self.seq).__await__()

    def result(self, timeout: float | None = None) -> None:
        self._journal.wait_durable_sync(self.seq, timeout)


LOST_CODE = "gateway_restarted"


class Running(Protocol):
    """What the journal reads from a running request (a gateway ``Meter``)."""

    request_id: str
    model: str
    endpoint: str
    stream: bool
    service_tier: str
    app_id: str | None
    content_events: int

    @property
    def prompt_tokens(self) -> int:
        """What the replica said the prompt is; 0 until it did."""
        ...

    @property
    def tenant_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...


class Ingest(Protocol):
    def record(self, event: UsageEvent) -> None: ...


def open_slot(base: Path) -> tuple[Path, IO[bytes]]:
    """The first journal directory under ``base`` no other process holds, and its lock."""
    base.mkdir(parents=True, exist_ok=True)
    for index in range(1024):
        directory = base / f"slot-{index}"
        directory.mkdir(exist_ok=True)
        lock = open(directory / "lock", "ab")  # noqa: SIM115 (held for the process's life)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return directory, lock
    raise RuntimeError(f"no free journal slot under {base}")


def _encode_event(event: UsageEvent) -> bytes:
    # orjson writes the (slotted) dataclass and its aware datetime as they are, quickly.
    return orjson.dumps(event)


def _decode_event(record: dict[str, Any]) -> UsageEvent:
    record["created_at"] = datetime.fromisoformat(record["created_at"])
    return UsageEvent(**record)


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as file:
        for line in file:
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line at the end of %s", path)  # cut by a crash


def replay(directory: Path, cost_of: Callable[[UsageEvent], int]) -> list[UsageEvent]:
    """Every request the journal's segments know of, as usage events to ingest."""
    ended: dict[str, UsageEvent] = {}
    started: dict[str, dict[str, Any]] = {}
    for path in _segments(directory):
        for record in _records(path):
            kind = record.get("k")
            if kind is None:  # a usage event: the only lines without a kind
                event = _decode_event(record)
                ended[event.request_id] = event
            elif kind == "b":
                started[record["request_id"]] = record
            elif kind == "p" and record["request_id"] in started:
                begun = started[record["request_id"]]
                begun["completion_tokens"] = record["completion_tokens"]
                begun["prompt_tokens"] = record.get("prompt_tokens", 0)
    for request_id, begun in started.items():
        if request_id in ended:
            continue
        lost = UsageEvent(
            request_id=request_id,
            tenant_id=begun["tenant_id"],
            key_id=begun["key_id"],
            model=begun["model"],
            endpoint=begun["endpoint"],
            stream=begun["stream"],
            prompt_tokens=begun.get("prompt_tokens", 0),
            cached_tokens=0,
            completion_tokens=begun.get("completion_tokens", 0),
            ttft_seconds=None,
            duration_seconds=0.0,
            status="error",
            http_status=502,
            error_code=LOST_CODE,
            created_at=datetime.fromisoformat(begun["created_at"]),
            service_tier=begun.get("service_tier", "default"),
            app_id=begun.get("app_id"),
        )
        ended[request_id] = lost.with_cost(cost_of(lost))
    return list(ended.values())


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    open_ids: set[str] = field(default_factory=set)
    closed: bool = False


class UsageJournal:
    def __init__(
        self,
        directory: Path,
        ingest: Ingest,
        clock_utcnow: Callable[[], datetime],
        *,
        segment_bytes: int = SEGMENT_BYTES,
        progress_interval_seconds: float = 0.1,
        lock: IO[bytes] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._lock = lock  # held (open) for as long as this journal writes to the slot
        self._ingest = ingest
        self._utcnow = clock_utcnow
        self._segment_bytes = segment_bytes
        self._progress_interval_seconds = progress_interval_seconds
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._running: dict[str, tuple[Running, tuple[int, int]]] = {}
        self._segments: list[_Segment] = []
        self._where: dict[str, list[_Segment]] = {}
        self._closing = False
        self._queued_seq = 0  # events queued so far
        self._durable_seq = 0  # of those, how many are on disk (always a prefix)
        self._ingested = 0  # of those, how many are in the database
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        existing = _segments(directory)
        self._next_number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        self._file: IO[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="usage-journal", daemon=True)

    @property
    def directory(self) -> Path:
        return self._directory

    def discard_replayed(self) -> None:
        """After ``replay``'s events are in the database: the old segments go."""
        for path in _segments(self._directory):
            path.unlink()

    def start(self) -> None:
        self._thread.start()

    def begin(self, request: Running) -> None:
        """A request is on its way to a replica: journaled, and its progress watched."""
        line = orjson.dumps(
            {
                "k": "b",
                "request_id": request.request_id,
                "tenant_id": request.tenant_id,
                "key_id": request.key_id,
                "model": request.model,
                "endpoint": request.endpoint,
                "stream": request.stream,
                "service_tier": request.service_tier,
                "app_id": request.app_id,
                "created_at": self._utcnow().isoformat(),
            }
        )
        with self._cond:
            # No wake-up: the line goes out with the next write, at most one progress
            # interval away, which is soon enough for a request that is still running.
            self._running[request.request_id] = (request, (0, 0))
            self._queue.append((request.request_id, line, None))

    def record(self, event: UsageEvent) -> Durable:
        """Queues the event; what it returns is done once the event is on disk (then the event
        goes to the database)."""
        line = _encode_event(event)
        with self._cond:
            if self._closing:
                raise RuntimeError(f"usage journal is closed; event {event.request_id} refused")
            self._running.pop(event.request_id, None)
            self._queue.append((event.request_id, line, event))
            self._queued_seq += 1
            seq = self._queued_seq
            self._cond.notify_all()
        return Durable(self, seq)

    async def wait_durable(self, seq: int) -> None:
        if self._durable_seq >= seq:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._durable_seq >= seq:
                return
            self._waiters.append((seq, loop, future))
        await future

    def wait_durable_sync(self, seq: int, timeout: float | None = None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._durable_seq >= seq, timeout):
                raise TimeoutError(f"usage event {seq} not durable within {timeout}s")

    def _made_durable(self, events: int) -> None:
        """After an fsync: wake who waits, each event loop once per group (not per event)."""
        with self._cond:
            self._durable_seq += events
            self._cond.notify_all()
            durable = self._durable_seq
            ready = [w for w in self._waiters if w[0] <= durable]
            if not ready:
                return
            self._waiters = [w for w in self._waiters if w[0] > durable]
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, loop, future in ready:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            loop.call_soon_threadsafe(_resolve, futures)

    def lag(self) -> tuple[int, int]:
        """Events recorded but not yet on disk, and not yet in the database."""
        with self._cond:
            return self._queued_seq - self._durable_seq, max(0, self._queued_seq - self._ingested)

    def ingested(self, events: list[UsageEvent]) -> None:
        """Called by the recorder once events are in the database."""
        with self._cond:
            self._ingested += len(events)
            for event in events:
                for segment in self._where.pop(event.request_id, []):
                    segment.open_ids.discard(event.request_id)
            self._drop_finished_segments()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: bool(self._queue) or self._closing, self._progress_interval_seconds
                )
                batch, self._queue = self._queue, []
                progress = self._progress_lines()
                closing = self._closing and not batch
            if batch or progress:
                try:
                    self._write(batch, progress)
                except Exception:
                    # A disk that fails must not stop metering: the events still go to the
                    # database and their requests complete; the failure is loud.
                    log.exception("journal write failed; %d events not durable", len(batch))
                    with contextlib.suppress(Exception):
                        self._close_file()
                self._hand_over(batch)
            if closing:
                self._close_file()
                return

    def _progress_lines(self) -> list[bytes]:
        lines = []
        for request_id, (request, written) in self._running.items():
            made, prompt = request.content_events, request.prompt_tokens
            if (made, prompt) != written:
                self._running[request_id] = (request, (made, prompt))
                progress = {"k": "p", "request_id": request_id, "completion_tokens": made}
                lines.append(orjson.dumps({**progress, "prompt_tokens": prompt}))
        return lines

    def _write(self, batch: list[_Queued], progress: list[bytes]) -> None:
        file, segment = self._current()
        file.write(b"".join(line + b"\n" for _, line, _ in batch))
        if progress:
            file.write(b"\n".join(progress) + b"\n")
        file.flush()  # in the OS now: a killed process loses nothing from here on
        if any(event is not None for _, _, event in batch):
            os.fdatasync(file.fileno())  # events are made durable against power loss too
        with self._cond:
            for request_id, _, _ in batch:
                where = self._where.setdefault(request_id, [])
                if segment not in where:
                    where.append(segment)
                    segment.open_ids.add(request_id)
        if file.tell() >= self._segment_bytes:
            self._close_file()

    def _hand_over(self, batch: list[_Queued]) -> None:
        events = [event for _, _, event in batch if event is not None]
        for event in events:
            self._ingest.record(event)
        self._made_durable(len(events))

    def _current(self) -> tuple[IO[bytes], _Segment]:
        if self._file is None:
            path = self._directory / f"segment-{self._next_number}.jsonl"
            self._file = open(path, "ab")  # noqa: SIM115 (closed on rotation)
            with self._cond:
                self._segments.append(_Segment(self._next_number, path))
            self._next_number += 1
        return self._file, self._segments[-1]

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            with self._cond:
                self._segments[-1].closed = True
                self._drop_finished_segments()

    def _drop_finished_segments(self) -> None:
        """Under the lock: closed segments with nothing left outstanding are deleted."""
        keep = []
        for segment in self._segments:
            if segment.closed and not segment.open_ids:
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        self._segments = keep


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
