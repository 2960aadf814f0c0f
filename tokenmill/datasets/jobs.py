"""A fine-tuning job's files as a dataset version: what the job trained on, kept.

When a job's files validate, its training examples (and its validation file's, as the
validation split) become a version of the tenant's dataset named after the training file;
the same content is the same version, so a job run again on the same file adds nothing. The
job keeps the version's reference (dataset id, version, sha256), and so does its model's card.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tokenmill.datasets.objects import name_from_filename
from tokenmill.datasets.service import DatasetService, Provenance
from tokenmill.datasets.tokenizers import Tokenizer, gguf_counter
from tokenmill.tuning.objects import FineTuningJobInfo
from tokenmill.tuning.validation import TokenCounter, ValidationReport

RecordDataset = Callable[[FineTuningJobInfo, Path, Mapping[str, ValidationReport]], dict[str, Any]]


def job_dataset_recorder(
    datasets: DatasetService, counter: Callable[[Path], TokenCounter] = gguf_counter
) -> RecordDataset:
    """``record(job, base model's GGUF, reports by param)`` -> the version's reference."""

    def record(
        job: FineTuningJobInfo, base: Path, reports: Mapping[str, ValidationReport]
    ) -> dict[str, Any]:
        upload = datasets.files.get(job.tenant_id, job.training_file_id)
        added = datasets.from_reports(
            job.tenant_id,
            name_from_filename(upload.filename),
            reports["training_file"],
            reports.get("validation_file"),
            Tokenizer(job.base_served_name, counter(base)),
            Provenance(
                created_by=job.key_id,
                source=f"fine-tuning job {job.id} ({upload.filename})",
                training_file_id=upload.id,
            ),
            validation_file_id=job.validation_file_id,
        )
        return added.version.reference()

    return record
