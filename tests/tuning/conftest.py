"""A fine-tuning bench: two tenants, a model directory, files, the queue, prices and the ledger
around one ``FineTuningService``, on the ``database`` fixture and a manual clock. And, once per
session, what several modules read: the bundled model's GGUF file, and the persona adapter
trained on it (``tests.tuning.persona``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.gateway.conftest import two_tenants
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.card import ModelCard
from tokenmill.clock import ManualClock
from tokenmill.control.keys import KeyRepository, Principal
from tokenmill.files.service import FileService
from tokenmill.gateway.directory import ModelDirectory, ModelEntry
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.billing import TrainingBilling
from tokenmill.tuning.objects import FineTuningJobInfo, new_job_id
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.service import KIND, FineTuningService
from tokenmill.tuning.status import JobStatus
from tokenmill.work.items import WorkItem
from tokenmill.work.queue import WorkQueue

if TYPE_CHECKING:  # torch, transformers and peft load when a test asks for the persona
    import gguf

    from tests.tuning.persona import Tuned

BASE = "smol"  # a chat model of the library every tenant sees
TRAINING_PRICE = 2_000_000  # micros per million trained tokens
LEASE_SECONDS = 60.0


def _entry(model_id: str, task: str = "chat", **more: Any) -> ModelEntry:
    created = datetime.fromisoformat("2025-06-01T00:00:00+00:00")
    card = ModelCard(name=model_id)
    return ModelEntry(model_id, task, 2048, None, created, card=card, **more)


@dataclass
class Tuning:
    service: FineTuningService
    jobs: JobRepository
    queue: WorkQueue
    files: FileService
    prices: PriceBookRepository
    ledger: LedgerRepository
    billing: TrainingBilling
    clock: ManualClock
    alpha: Principal
    beta: Principal

    def upload(self, who: Principal, purpose: str = "fine-tune") -> str:
        data = b'{"messages": [{"role": "user", "content": "hi"}]}\n'
        return self.files.write(who.tenant_id, who.key_id, "train.jsonl", purpose, data).id

    def create(self, who: Principal | None = None, **asked: Any) -> FineTuningJobInfo:
        who = who or self.alpha
        values: dict[str, Any] = {
            "model": BASE,
            "training_file": asked.pop("training_file", None) or self.upload(who),
            "validation_file": None,
            "suffix": None,
            "seed": 7,
            "hyperparameters": {"n_epochs": "auto"},
            "metadata": {},
        }
        return self.service.create(who, **{**values, **asked})

    def record(self, tenant_id: str | None = None, **fields: Any) -> FineTuningJobInfo:
        """A job written straight to the repository (no work item), now unless told."""
        job = FineTuningJobInfo(
            id=new_job_id(),
            tenant_id=tenant_id or self.alpha.tenant_id,
            key_id="key_x",
            model=BASE,
            base_served_name=f"{BASE}@1",
            training_file_id="file-x",
            validation_file_id=None,
            suffix=None,
            seed=1,
            hyperparameters={"n_epochs": "auto"},
            status=JobStatus.VALIDATING_FILES,
            created_at=self.clock.utcnow(),
        )
        return self.jobs.add(replace(job, **fields))

    def claim(self, worker: str = "worker-1") -> WorkItem:
        item = self.queue.claim(worker, [KIND], LEASE_SECONDS)
        assert item is not None
        return item

    def running(self, trained_tokens: int = 0) -> FineTuningJobInfo:
        """A job that a worker holds and trains: validated, queued, then running."""
        job = self.create()
        self.claim()
        self.jobs.update(job.id, JobStatus.QUEUED, reserved_micros=1_000)
        return self.jobs.update(job.id, JobStatus.RUNNING, trained_tokens=trained_tokens)


@pytest.fixture
def tuning(database: Database, clock: ManualClock, tmp_path: Path) -> Tuning:
    _, _, alpha_id = two_tenants(database, clock)
    keys = KeyRepository(database, clock)
    principals = [keys.principal(k.id) for k in keys.list()]
    alpha = next(p for p in principals if p is not None and p.tenant_id == alpha_id)
    beta = next(p for p in principals if p is not None and p.tenant_id != alpha_id)
    beta_model = replace(_entry("beta-private"), owner_tenant_id=beta.tenant_id)
    directory = ModelDirectory(
        [
            _entry(BASE),
            _entry("writer", "completion"),
            _entry("embedder", "embedding"),
            replace(_entry("cardless"), card=None),
            replace(_entry(f"ft:{BASE}:{alpha_id}::0123abcd"), owner_tenant_id=alpha_id),
            beta_model,
        ]
    )
    files = FileService.build(Settings(data_dir=tmp_path), database, clock)
    jobs, queue = JobRepository(database, clock), WorkQueue(database, clock)
    prices, ledger = PriceBookRepository(database, clock), LedgerRepository(database, clock)
    prices.add(BASE, Price(training_micros_per_mtok=TRAINING_PRICE))
    billing = TrainingBilling(prices, ledger, jobs)
    service = FineTuningService(jobs, files, queue, directory, billing, clock)
    clock.advance(1)
    return Tuning(service, jobs, queue, files, prices, ledger, billing, clock, alpha, beta)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch's OpenMP threads spin while they wait for each other: beside other busy processes
    (a test suite, a serving replica) two threads on two cores ran a step 20-40 times slower
    than one thread did."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bundled_gguf() -> gguf.GGUFReader:
    """The bundled model's file, read once: gguf's reader parses its 49k-token vocabulary in
    Python, seconds each time."""
    import gguf

    from tests.tuning.persona import BASE as BUNDLED

    return gguf.GGUFReader(BUNDLED)


@pytest.fixture(scope="session")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    """The persona adapter, trained once for ``test_export`` and ``test_merge``."""
    from tests.tuning.persona import train_persona

    return train_persona(tmp_path_factory.mktemp("persona"))
