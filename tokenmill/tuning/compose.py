"""Fine-tuning on a gateway: the /v1/fine_tuning API and the workers that run its jobs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.datasets.compose import build_datasets
from tokenmill.datasets.jobs import job_dataset_recorder
from tokenmill.files.service import FileService
from tokenmill.gateway.library import load_directory
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.billing import TrainingBilling
from tokenmill.tuning.execution import (
    Base,
    TuningOptions,
    TuningParts,
    fine_tune_handler,
)
from tokenmill.tuning.hyperparameters import resolve_hyperparameters
from tokenmill.tuning.publish import withdraw_adapter
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.service import KIND, FineTuningService
from tokenmill.tuning.validation import ValidationReport, validate
from tokenmill.work.background import Periodic, ThreadedWorker
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

if TYPE_CHECKING:
    from tokenmill.gateway.services import Services

TRAINING_LEASE_SECONDS = 120.0  # a worker killed mid-job gives it up this soon
RECONCILE_SECONDS = 60.0


@functools.lru_cache(maxsize=4)
def _counter(base: Path) -> Any:
    """The base model's own tokenizer, loaded once per process (a few seconds)."""
    from tokenmill.tuning.encoding import count_tokens, load_tokenizer

    tokenizer = load_tokenizer(base)
    return functools.partial(count_tokens, tokenizer)


def validate_for(base: Base, data: bytes, epochs: int | None) -> ValidationReport:
    """A file checked for ``base``: counted in its tokens, against its context."""
    return validate(
        data, count_tokens=_counter(base.path), context_length=base.context_tokens, epochs=epochs
    )


def add_fine_tuning(
    services: Services,
    settings: Settings,
    db: Database,
    clock: Clock,
    files: FileService,
    *,
    workers: int,
) -> None:
    jobs = JobRepository(db, clock)
    prices = PriceBookRepository(db, clock)
    billing = TrainingBilling(prices, LedgerRepository(db, clock), jobs)
    queue = WorkQueue(db, clock)
    service = FineTuningService(jobs, files, queue, services.directory, billing, clock)
    models = ModelRepository(db, clock)

    def reload() -> None:
        load_directory(models, services.directory)

    def withdraw(model_id: str) -> None:
        withdraw_adapter(models, model_id, settings.adapters_dir)
        reload()  # this gateway refuses it at once

    service.withdraw = withdraw
    services.fine_tuning = service
    if workers == 0:
        return
    services.loops.append(Periodic("fine-tuning jobs ended", service.reconcile, RECONCILE_SECONDS))
    handler = fine_tune_handler(training_parts(settings, db, clock, files, published=reload))
    for _ in range(workers):
        runner = WorkRunner(queue, {KIND: handler}, lease_seconds=TRAINING_LEASE_SECONDS)
        services.loops.append(ThreadedWorker(runner))


def training_parts(
    settings: Settings,
    db: Database,
    clock: Clock,
    files: FileService,
    *,
    published: Callable[[], None] = lambda: None,
) -> TuningParts:
    """What a worker runs jobs with; ``published``: the new model is seen (a library reload)."""
    jobs = JobRepository(db, clock)
    prices = PriceBookRepository(db, clock)
    return TuningParts(
        jobs=jobs,
        files=files,
        models=ModelRepository(db, clock),
        billing=TrainingBilling(prices, LedgerRepository(db, clock), jobs),
        prices=prices,
        validate=validate_for,
        resolve=resolve_hyperparameters,
        options=TuningOptions(
            work_dir=settings.ensure_data_dir() / "fine_tuning",
            adapters_dir=settings.adapters_dir,
            threads=settings.tuning_threads,
        ),
        clock=clock,
        published=published,
        record_dataset=job_dataset_recorder(build_datasets(db, clock, files)),
    )
