"""Usage recording off the hot path: requests append events, one thread writes them in batches.

``record`` only appends to an in-memory queue, so the event loop never waits on the database.
The writer thread gathers a batch (up to ``batch_size``, or whatever arrived within
``flush_interval_seconds``), writes it with ``insert_many`` (idempotent by request id, so a
retried batch never counts twice) and only then drops it from the queue.

Failures: a database that is down or locked is retried with capped back-off, forever, while
the events wait in the queue. An event the database refuses for its content (a value out of
range) would block every later event, so a refused batch is retried one event at a time and
only the refused events are set aside, logged as errors with their content, in
``dead_letters``. Nothing is dropped silently.

The durable journal (``tokenmill.billing.journal``) goes in front of this: it fsyncs each
event before handing it to ``record``, and ``on_written`` tells it what is in the database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from tokenmill.billing.usage import UsageEvent

logger = logging.getLogger(__name__)

_Outcome = Literal["written", "refused", "abandoned"]


class UsageStore(Protocol):
    def insert_many(self, events: Sequence[UsageEvent]) -> int: ...


def is_refusal(error: Exception) -> bool:
    """True when the database refused the data itself, so retrying the same rows cannot help."""
    if isinstance(error, DataError | IntegrityError):
        return True
    # A StatementError that is not a DBAPIError failed while converting a value, before the
    # database was reached.
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)


class UsageRecorder:
    def __init__(
        self,
        repo: UsageStore,
        flush_interval_seconds: float,
        *,
        batch_size: int = 500,
        first_retry_delay_seconds: float = 0.1,
        max_retry_delay_seconds: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._repo = repo
        self._flush_interval_seconds = flush_interval_seconds
        self._batch_size = batch_size
        self._first_retry_delay_seconds = first_retry_delay_seconds
        self._max_retry_delay_seconds = max_retry_delay_seconds
        self._cond = threading.Condition()
        self._pending: deque[UsageEvent] = deque()
        self._recorded = 0  # events ever recorded
        self._done = 0  # of those, how many are written or set aside (always a prefix)
        self._dead_letters: list[UsageEvent] = []
        self._urgent = False  # a flush is waiting: write without lingering
        self._closing = False
        self._stopped = False
        self._abandon = threading.Event()
        # Told which events are in the database (or set aside), after each batch.
        self.on_written: Callable[[list[UsageEvent]], None] | None = None
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    def record(self, event: UsageEvent) -> None:
        """Queues the event; never touches the database. Safe from the event loop and threads."""
        with self._cond:
            if self._closing:
                raise RuntimeError(f"usage recorder is closed; event {event.request_id} refused")
            self._pending.append(event)
            self._recorded += 1
            if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
                self._cond.notify_all()

    def flush(self, timeout_seconds: float | None = None) -> bool:
        """Waits until every event recorded before this call is in the database (or set aside).

        Returns ``False`` if that did not happen within ``timeout_seconds``.
        """
        with self._cond:
            target = self._recorded
            if self._done >= target:
                return True
            self._urgent = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._done >= target or self._stopped, timeout_seconds)
            return self._done >= target

    async def aflush(self, timeout_seconds: float | None = None) -> bool:
        return await asyncio.to_thread(self.flush, timeout_seconds)

    def close(self, timeout_seconds: float | None = 30.0) -> bool:
        """Writes everything queued, then stops the writer. Further ``record`` calls raise.

        If the database stays unreachable past ``timeout_seconds``, the writer gives up; what
        is still queued is logged as an error and remains available from ``unwritten()``.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(self._max_retry_delay_seconds)
        left = self.unwritten()
        if left:
            logger.error(
                "usage recorder closed with %d events not written: %s",
                len(left),
                ", ".join(event.request_id for event in left),
            )
        return not left

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    @property
    def dead_letters(self) -> tuple[UsageEvent, ...]:
        with self._cond:
            return tuple(self._dead_letters)

    def unwritten(self) -> list[UsageEvent]:
        with self._cond:
            return list(self._pending)

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if not self._write(batch):
                    return
        except BaseException:
            logger.exception("usage writer stopped unexpectedly")
            raise
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _next_batch(self) -> list[UsageEvent] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closing)
            if not self._pending:
                return None
            if not (self._urgent or self._closing or len(self._pending) >= self._batch_size):
                self._cond.wait_for(
                    lambda: self._urgent or self._closing or len(self._pending) >= self._batch_size,
                    self._flush_interval_seconds,
                )
            # Left in the queue until written: flush() and unwritten() still see them.
            return list(itertools.islice(self._pending, self._batch_size))

    def _write(self, batch: list[UsageEvent]) -> bool:
        """Writes the batch (refused events set aside); ``False`` if abandoned on close."""
        outcome = self._insert_with_retries(batch)
        if outcome == "refused":
            for event in batch:
                single = self._insert_with_retries([event])
                if single == "abandoned":
                    return False
                if single == "refused":
                    self._set_aside(event)
        elif outcome == "abandoned":
            return False
        self._mark_done(len(batch))
        if self.on_written is not None:
            self.on_written(batch)
        return True

    def _insert_with_retries(self, events: list[UsageEvent]) -> _Outcome:
        delay = self._first_retry_delay_seconds
        while not self._abandon.is_set():
            try:
                self._repo.insert_many(events)
                return "written"
            except Exception as error:
                if is_refusal(error):
                    return "refused"
                logger.warning(
                    "writing %d usage events failed; retrying in %.1fs",
                    len(events),
                    delay,
                    exc_info=True,
                )
            self._abandon.wait(delay)
            delay = min(delay * 2, self._max_retry_delay_seconds)
        return "abandoned"

    def _set_aside(self, event: UsageEvent) -> None:
        logger.error("usage event refused by the database, set aside: %r", event)
        with self._cond:
            self._dead_letters.append(event)

    def _mark_done(self, count: int) -> None:
        with self._cond:
            for _ in range(count):
                self._pending.popleft()
            self._done += count
            if not self._pending:
                self._urgent = False
            self._cond.notify_all()
