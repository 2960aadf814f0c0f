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

Files: ``segment-<n>.jsonl`` in the journal directory (``tokenmill.billing.journal_files``).
A segment is deleted once it is closed and every request in it has its event in the
database. Each gateway process holds a lock on its own journal directory (``slot``), so
processes sharing a data directory never share a journal, and a restarted one replays its slot.

A disk that fails (full, gone read-only) does not stop metering: the events of a write that
failed go to the database all the same, the segment is given up, and the next write starts a
new one, so the journal is durable again as soon as the disk has room. Meanwhile those events
live only in memory until the database has them; ``metering_ok`` says False once one of them
has waited longer than ``fallback_grace_seconds`` (the database is not keeping up either), and
the gateway's admission refuses new work until it says True again, rather than serve requests
whose usage a crash would lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from tokenmill.billing.journal_files import (
    LOST_CODE,
    encode_event,
    open_slot,
    replay,
    segments,
)
from tokenmill.billing.usage import UsageEvent

log = logging.getLogger(__name__)

SEGMENT_BYTES = 8 * 1024 * 1024
FALLBACK_GRACE_SECONDS = 2.0  # an event not on disk may wait this long for the database

# (request id, line, the event if it is one)
_Queued = tuple[str, bytes, "UsageEvent | None"]

__all__ = ["LOST_CODE", "Durable", "UsageJournal", "open_slot", "replay"]


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
        monotonic: Callable[[], float] = time.monotonic,
        fallback_grace_seconds: float = FALLBACK_GRACE_SECONDS,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._lock = lock  # held (open) for as long as this journal writes to the slot
        self._ingest = ingest
        self._utcnow = clock_utcnow
        self._segment_bytes = segment_bytes
        self._progress_interval_seconds = progress_interval_seconds
        self._monotonic = monotonic
        self._fallback_grace_seconds = fallback_grace_seconds
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._running: dict[str, tuple[Running, tuple[int, int]]] = {}
        self._segments: list[_Segment] = []
        self._where: dict[str, list[_Segment]] = {}
        self._closing = False
        self._queued_seq = 0  # events queued so far
        self._durable_seq = 0  # of those, how many are on disk (always a prefix)
        self._ingested = 0  # of those, how many are in the database
        self._failing = False  # the last write failed
        self._undurable: dict[str, float] = {}  # request id → when: not on disk, not ingested
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        existing = segments(directory)
        self._next_number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        self._file: IO[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="usage-journal", daemon=True)

    @property
    def directory(self) -> Path:
        return self._directory

    def discard_replayed(self) -> None:
        """After ``replay``'s events are in the database: the old segments go."""
        for path in segments(self._directory):
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
        line = encode_event(event)
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

    @property
    def failing(self) -> bool:
        """The last write to the disk failed."""
        return self._failing

    def metering_ok(self, now: float) -> bool:
        """False while an event that is not on disk (its write failed) has waited longer than
        ``fallback_grace_seconds`` for the database: usage is then safe nowhere, and new work
        should wait. ``now`` is on the ``monotonic`` clock the journal was given."""
        with self._cond:
            if not self._undurable:
                return True
            oldest = next(iter(self._undurable.values()))
        return now - oldest < self._fallback_grace_seconds

    def ingested(self, events: list[UsageEvent]) -> None:
        """Called by the recorder once events are in the database."""
        with self._cond:
            self._ingested += len(events)
            for event in events:
                self._undurable.pop(event.request_id, None)
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
                    self._write_failed(batch)
                else:
                    if self._failing:
                        log.warning("the usage journal writes to %s again", self._directory)
                    self._failing = False
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

    def _write_failed(self, batch: list[_Queued]) -> None:
        """The batch's events are watched until the database has them, and the segment is
        given up (its buffered bytes with it), so the next write starts a new one."""
        events = [request_id for request_id, _, event in batch if event is not None]
        if not self._failing:
            log.exception("usage journal write failed; %d events not durable", len(events))
        now = self._monotonic()
        with self._cond:
            self._failing = True
            for request_id in events:
                self._undurable.setdefault(request_id, now)
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # closed all the same; what it held is lost
                file.close()
            with self._cond:
                self._segments[-1].closed = True
                self._drop_finished_segments()

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
