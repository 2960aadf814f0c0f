"""A ``WorkRunner`` in its own thread, as one of the gateway's background loops.

``run`` starts the thread and waits; when the loop is cancelled (the gateway stopping) it asks
the runner to stop and waits for the item in hand to end, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from tokenmill.work.runner import WorkRunner

log = logging.getLogger(__name__)


class ThreadedWorker:
    def __init__(self, runner: WorkRunner) -> None:
        self.runner = runner
        self.stop = threading.Event()

    async def run(self) -> None:
        thread = threading.Thread(
            target=self.runner.run, args=(self.stop,), name=f"work-{self.runner.worker_id}"
        )
        thread.start()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self.stop.set()
            await asyncio.to_thread(thread.join)


class Periodic:
    """``step`` in a thread every ``interval_seconds``, as a background loop; a failed round is
    logged and the next one tries again. ``step`` returns how many things it did."""

    def __init__(self, what: str, step: Callable[[], int], interval_seconds: float) -> None:
        self._what = what
        self._step = step
        self._interval_seconds = interval_seconds

    async def run(self) -> None:
        while True:
            try:
                done = await asyncio.to_thread(self._step)
                if done:
                    log.info("%s: %d", self._what, done)
            except Exception:
                log.exception("%s failed; retrying", self._what)
            await asyncio.sleep(self._interval_seconds)
