"""A work runner polling in a thread of the test, as a gateway's worker loop runs it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tokenmill.work.runner import WorkRunner


@contextmanager
def running(runner: WorkRunner) -> Iterator[None]:
    """``runner`` takes work until the block ends (then finishes what it holds)."""
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
