"""A ``WorkRunner`` in its own thread, as one of the gateway's background loops.

``run`` starts the thread and waits; when the loop is cancelled (the gateway stopping) it asks
the runner to stop and waits for the item in hand to end, off the event loop.
"""

from __future__ import annotations

import asyncio
import threading

from tokenmill.work.runner import WorkRunner


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
