"""A fine-tuning worker in a process of its own, for tests that kill it:

    python -m tests.tuning.worker <database url> <data dir> <lease seconds>

It runs the database's ``fine_tune`` work items with the parts ``tokenmill serve``'s workers run
them with (``tuning.compose.training_parts``: the real handler, trainer process, billing and
library), one trainer thread, and logs to stdout (a line per checkpoint among them). It exits
once no fine-tuning job is left unfinished.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from tokenmill.clock import SystemClock
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.compose import training_parts
from tokenmill.tuning.execution import fine_tune_handler
from tokenmill.tuning.service import KIND
from tokenmill.tuning.status import JobStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

POLL_SECONDS = 0.2
UNFINISHED = frozenset({JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING})


def main(argv: list[str]) -> int:
    url, data_dir, lease_seconds = argv[1], Path(argv[2]), float(argv[3])
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    settings = Settings(data_dir=data_dir, tuning_threads=1)
    db, clock = Database(url), SystemClock()
    parts = training_parts(settings, db, clock, FileService.build(settings, db, clock))
    runner = WorkRunner(
        WorkQueue(db, clock),
        {KIND: fine_tune_handler(parts)},
        lease_seconds=lease_seconds,
        poll_seconds=POLL_SECONDS,
    )
    idle = threading.Event()
    while parts.jobs.list(None, statuses=UNFINISHED).data:
        if runner.run_once() is None:  # nothing claimable yet: a lost worker's lease runs
            idle.wait(POLL_SECONDS)
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
