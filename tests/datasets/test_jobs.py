"""A fine-tuning job's training file kept as a dataset version when it validates: the job's
record and its fine-tuned model's card name the version; the same file again is the same
version. Run through the real work handler, stopped (paused) right after validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.datasets.conftest import MODEL, Library, examples, jsonl
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.compose import training_parts
from tokenmill.tuning.execution import fine_tune_handler
from tokenmill.tuning.objects import FineTuningJobInfo, new_job_id
from tokenmill.tuning.publish import publish_adapter
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.service import KIND, work_key
from tokenmill.tuning.status import JobStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner


def validated(
    library: Library, database: Database, tmp_path: Path, training: str, validation: str | None
) -> FineTuningJobInfo:
    """A job on the files, run by a worker until its files are validated (it pauses there)."""
    jobs, queue = JobRepository(database, library.clock), WorkQueue(database, library.clock)
    job = FineTuningJobInfo(
        id=new_job_id(),
        tenant_id=library.alpha,
        key_id="key_x",
        model=MODEL,
        base_served_name=f"{MODEL}@1",
        training_file_id=training,
        validation_file_id=validation,
        suffix=None,
        seed=1,
        hyperparameters={"n_epochs": 1},
        status=JobStatus.VALIDATING_FILES,
        created_at=library.clock.utcnow(),
        control="pause",
    )
    jobs.add(job)
    item = queue.enqueue(
        KIND, {"job_id": job.id}, tenant_id=job.tenant_id, idempotency_key=work_key(job)
    )
    jobs.update(job.id, work_item_id=item.id)
    parts = training_parts(Settings(data_dir=tmp_path), database, library.clock, library.files)
    WorkRunner(queue, {KIND: fine_tune_handler(parts)}).run_once()
    return jobs.load(job.id)


def test_a_jobs_training_file_is_a_dataset_version(
    library: Library, database: Database, tmp_path: Path
) -> None:
    rows = examples(12)
    training = library.upload(library.alpha, jsonl(rows), "persona chats.jsonl")
    held = library.upload(library.alpha, jsonl(examples(10, tag="h")), "held.jsonl")
    job = validated(library, database, tmp_path, training, held)
    assert job.status == JobStatus.PAUSED, job.error
    assert job.validation is not None
    reference = job.validation["training_file"]["dataset"]
    dataset = library.service.get(library.alpha, reference["id"])
    version = dataset.versions[0]
    assert reference == {"id": dataset.id, "version": 1, "sha256": version.sha256}
    assert dataset.name == "persona_chats" and version.training_file_id == training
    assert (version.train_rows, version.validation_rows) == (12, 10)
    assert version.tokenizer == f"{MODEL}@1" and version.tokens > 12 * 10
    assert version.split == {"method": "file", "validation_file": held}
    assert job.id in (version.source or "")

    # The same file in another job: the same version, nothing new.
    again = validated(
        library,
        database,
        tmp_path,
        library.upload(library.alpha, jsonl(rows), "persona chats.jsonl"),
        held,
    )
    assert (
        again.validation is not None and again.validation["training_file"]["dataset"] == reference
    )
    assert len(library.blobs()) == 1

    # The fine-tuned model's card names the version it was trained on.
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF not really")
    models = ModelRepository(database, library.clock)
    finished = replace(job, trained_tokens=100, cost_micros=0)
    made = publish_adapter(
        models, PriceBookRepository(database, library.clock), finished, f"ft:{MODEL}:x", adapter, {}
    )
    card = made.card.fine_tuning
    assert card is not None and card["dataset"] == reference
