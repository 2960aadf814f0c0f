"""Running a fine-tuning job: the ``fine_tune`` work item's handler.

A job's run, from the worker's side:

1. ``validating_files``: the files are checked line by line (``tuning.validation``) and counted
   in the base model's own tokens; a file with errors fails the job with every bad line in
   its report. The estimated cost is held against the tenant's credit (``tuning.billing``).
2. ``queued`` -> ``running``: the trainer runs in its own process (``tuning.run``); each step
   is an event with its metrics, each epoch a checkpoint. A pause asked for checkpoints and
   stops (``paused``); a cancel stops within a step (``cancelled``, billed for what trained).
   A crashed run is retried (the work item's attempts) and goes on from its last checkpoint.
3. ``succeeded``: the adapter joins the library as the tenant's private model
   ``ft:<base>:<tenant>:<suffix>:<id>``, served by the base model's replicas; the trained
   tokens are debited.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.errors import InsufficientQuota
from tokenmill.files.service import FileService
from tokenmill.tuning.billing import TrainingBilling, base_model_id
from tokenmill.tuning.objects import FineTuningJobInfo, fine_tuned_name
from tokenmill.tuning.publish import publish_adapter
from tokenmill.tuning.repository import JobRepository
from tokenmill.tuning.run import RunSpec, TrainerRun
from tokenmill.tuning.service import end_cancelled
from tokenmill.tuning.status import JobStatus
from tokenmill.tuning.validation import ValidationReport
from tokenmill.work.items import WorkItem
from tokenmill.work.runner import Handler, WorkContext, WorkStopped

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Base:
    """The model a job trains on: its GGUF file and the context its examples must fit."""

    path: Path
    context_tokens: int


Validate = Callable[[Base, bytes, int | None], ValidationReport]  # base, file, epochs
# job, base GGUF, reports by param -> the dataset version's reference (``datasets.jobs``)
RecordDataset = Callable[[FineTuningJobInfo, Path, dict[str, ValidationReport]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TuningOptions:
    work_dir: Path  # one directory per job: examples, checkpoints, logs
    adapters_dir: Path  # where replicas find adapters, by id
    threads: int  # the trainer's CPU threads


@dataclass(frozen=True, slots=True)
class TuningParts:
    jobs: JobRepository
    files: FileService
    models: ModelRepository
    billing: TrainingBilling
    prices: PriceBookRepository
    validate: Validate
    resolve: Callable[[dict[str, Any], int], dict[str, Any]]  # asked, examples -> trained with
    options: TuningOptions
    clock: Clock
    published: Callable[[], None] = lambda: None  # this gateway sees the new model at once
    record_dataset: RecordDataset | None = None  # the validated files kept as a dataset version


def fine_tune_handler(parts: TuningParts) -> Handler:
    def handle(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        job = parts.jobs.load(item.payload["job_id"])
        try:
            job = _run(parts, job, context)
        except WorkStopped:
            job = parts.jobs.load(job.id)
            if not job.finished:
                end_cancelled(parts.jobs, parts.billing, job)
            raise
        except Exception as error:
            if item.attempts >= item.max_attempts:
                _fail(parts, job.id, "training_failed", f"Training failed: {error}")
            raise
        return {"job_id": job.id, "status": job.status.value}

    return handle


def _run(parts: TuningParts, job: FineTuningJobInfo, context: WorkContext) -> FineTuningJobInfo:
    if job.finished or job.status == JobStatus.PAUSED:
        return job
    if job.control == "cancel":
        return end_cancelled(parts.jobs, parts.billing, job)
    base = base_artifact(parts.models, job)
    if job.status == JobStatus.VALIDATING_FILES:
        job = _validate(parts, job, base, context)
        if job.status == JobStatus.FAILED:
            return job
    if job.control == "pause":
        return parts.jobs.update(job.id, JobStatus.PAUSED, control=None)
    if job.status == JobStatus.QUEUED:
        job = parts.jobs.update(
            job.id, JobStatus.RUNNING, started_at=job.started_at or parts.clock.utcnow()
        )
    first = job.runs == 0 and context.item.attempts <= 1  # else paused, or its worker was lost
    context.event("info", "Fine-tuning job started" if first else "Job resumed")
    return _train(parts, job, base, context)


def base_artifact(models: ModelRepository, job: FineTuningJobInfo) -> Base:
    model_id, _, version = job.base_served_name.partition("@")
    model = models.require(model_id)
    found = model.version(version)
    if found is None or not Path(found.artifact).is_file():
        raise FileNotFoundError(f"the base model {job.base_served_name} has no file here")
    return Base(Path(found.artifact), found.context_tokens(model.context_tokens))


def job_dir(parts: TuningParts, job: FineTuningJobInfo) -> Path:
    path = parts.options.work_dir / job.id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read(parts: TuningParts, job: FineTuningJobInfo, file_id: str) -> bytes:
    _, chunks = parts.files.content(job.tenant_id, file_id)
    return b"".join(chunks)


def _validate(
    parts: TuningParts, job: FineTuningJobInfo, base: Base, context: WorkContext
) -> FineTuningJobInfo:
    reports: dict[str, ValidationReport] = {}
    digests: dict[str, str] = {}
    named = [("training_file", job.training_file_id)]
    if job.validation_file_id is not None:
        named.append(("validation_file", job.validation_file_id))
    epochs = job.hyperparameters.get("n_epochs")
    for param, file_id in named:
        context.event("info", f"Validating {param.replace('_', ' ')}: {file_id}")
        data = _read(parts, job, file_id)
        report = parts.validate(base, data, _epochs(epochs))
        reports[param] = report
        digests[param] = hashlib.sha256(data).hexdigest()
        if not report.ok:
            return _invalid(parts, job, param, file_id, report, reports)
    training = reports["training_file"]
    resolved = parts.resolve(job.hyperparameters, training.examples)
    estimated = (training.tokens.total_tokens if training.tokens else 0) * resolved["n_epochs"]
    try:
        reserved = parts.billing.reserve(job, estimated)
    except InsufficientQuota as refused:
        code = refused.code or "insufficient_quota"
        return _fail(parts, job.id, code, refused.message, reports=reports)
    folder = job_dir(parts, job)
    for param, report in reports.items():
        lines = (json.dumps(example) for example in report.examples_data)
        (folder / f"{param}.jsonl").write_text("\n".join(lines) + "\n")
    validation = {p: {**r.as_json(), "sha256": digests[p]} for p, r in reports.items()}
    dataset = _record_dataset(parts, job, base, reports, context)
    if dataset is not None:
        validation["training_file"]["dataset"] = dataset
    context.event("info", "Files validated, moving job to queued state")
    return parts.jobs.update(
        job.id,
        JobStatus.QUEUED,
        resolved=resolved,
        estimated_tokens=estimated,
        reserved_micros=reserved,
        validation=validation,
    )


def _record_dataset(
    parts: TuningParts,
    job: FineTuningJobInfo,
    base: Base,
    reports: dict[str, ValidationReport],
    context: WorkContext,
) -> dict[str, Any] | None:
    """The training file kept in the dataset library; a failure there is a warning only."""
    if parts.record_dataset is None:
        return None
    try:
        dataset = parts.record_dataset(job, base.path, reports)
    except Exception as error:
        log.exception("%s: recording its training file as a dataset failed", job.id)
        context.event("warn", f"The training file was not kept as a dataset: {error}")
        return None
    context.event(
        "info", f"Training data is dataset {dataset['id']} version {dataset['version']}", dataset
    )
    return dataset


def _epochs(asked: object) -> int | None:
    return asked if isinstance(asked, int) else None


def _invalid(
    parts: TuningParts,
    job: FineTuningJobInfo,
    param: str,
    file_id: str,
    report: ValidationReport,
    reports: dict[str, ValidationReport],
) -> FineTuningJobInfo:
    shown = "; ".join(
        f"line {e.line}: {e.message}" if e.line else e.message for e in report.errors[:5]
    )
    if not shown:
        shown = f"it has {report.examples} examples; at least {report.min_examples} are needed"
    message = f"The {param.replace('_', ' ')} {file_id} is not valid: {shown}."
    return _fail(parts, job.id, f"invalid_{param}", message, param=param, reports=reports)


def _fail(
    parts: TuningParts,
    job_id: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    reports: dict[str, ValidationReport] | None = None,
) -> FineTuningJobInfo:
    changes: dict[str, Any] = {
        "error": {"code": code, "message": message, "param": param},
        "control": None,
        "reserved_micros": 0,
    }
    if reports is not None:
        changes["validation"] = {p: r.as_json() for p, r in reports.items()}
    return parts.jobs.update(job_id, JobStatus.FAILED, **changes)


def _train(
    parts: TuningParts, job: FineTuningJobInfo, base: Base, context: WorkContext
) -> FineTuningJobInfo:
    folder = job_dir(parts, job)
    validation = folder / "validation_file.jsonl"
    spec = RunSpec(
        base_gguf=str(base.path),
        train_path=str(folder / "training_file.jsonl"),
        validation_path=str(validation) if validation.is_file() else None,
        out_dir=str(folder / "run"),
        hyperparameters={**(job.resolved or {}), "seed": job.seed},
        threads=parts.options.threads,
        context_tokens=base.context_tokens,
    )
    run = TrainerRun(spec, folder / "trainer.log")
    relay = _Relay(parts, job, context)
    try:
        for message in run.messages():
            asked = parts.jobs.load(job.id).control
            if asked in ("pause", "cancel"):
                run.ask(asked)
            context.check()
            if message is not None:
                relay.handle(message)
    except BaseException:
        run.stop()
        raise
    code = run.wait()
    if relay.done is None:
        raise RuntimeError(f"the trainer exited with code {code}; see {folder / 'trainer.log'}")
    return _finish(parts, parts.jobs.load(job.id), relay.done, context)


class _Relay:
    """The trainer's messages into the job: events, progress, checkpoints, estimates."""

    def __init__(self, parts: TuningParts, job: FineTuningJobInfo, context: WorkContext) -> None:
        self._parts = parts
        self._job = job
        self._context = context
        self._started = time.monotonic()
        self._first_step: int | None = None
        self.done: dict[str, Any] | None = None

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "step":
            self._step(message)
        elif kind == "checkpoint":
            metrics = {k: v for k, v in message.get("metrics", {}).items() if v is not None}
            self._parts.jobs.add_checkpoint(
                self._job.id, int(message["step"]), metrics, str(message["path"])
            )
            self._context.event("info", f"Checkpoint saved at step {message['step']}", metrics)
            log.info("%s: checkpoint saved at step %s", self._job.id, message["step"])
        elif kind == "warning":  # an example cut to the context, or left out
            self._context.event("warn", str(message.get("message")))
        elif kind == "done":
            self.done = message

    def _step(self, message: dict[str, Any]) -> None:
        step, total = int(message["step"]), max(int(message["total_steps"]), 1)
        if self._first_step is None:
            self._first_step, self._started = step - 1, time.monotonic()
            if step > 1:
                self._context.event(
                    "info", f"Training goes on from the checkpoint at step {step - 1}"
                )
        per_step = (time.monotonic() - self._started) / max(step - self._first_step, 1)
        finish = self._parts.clock.utcnow() + timedelta(seconds=per_step * (total - step))
        self._parts.jobs.update(
            self._job.id,
            trained_tokens=int(message.get("trained_tokens", 0)),
            estimated_finish=finish,
        )
        shown = ("step", "total_steps", "train_loss", "train_mean_token_accuracy")
        data: dict[str, Any] = {k: message[k] for k in shown if message.get(k) is not None}
        self._context.event(
            "metrics",
            f"Step {step}/{total}: training loss={message.get('train_loss', 0):.4f}",
            data,
        )
        self._context.progress(step / total)


def _finish(
    parts: TuningParts, job: FineTuningJobInfo, done: dict[str, Any], context: WorkContext
) -> FineTuningJobInfo:
    trained = int(done.get("trained_tokens", job.trained_tokens or 0))
    stopped = done.get("stopped")
    if stopped == "cancel":
        return end_cancelled(parts.jobs, parts.billing, job)
    if stopped == "pause":
        context.event("info", f"Job paused after {trained} trained tokens")
        return parts.jobs.update(job.id, JobStatus.PAUSED, control=None, trained_tokens=trained)
    name = fine_tuned_name(base_model_id(job), job.tenant_id, job.suffix, job.id)
    adapter = Path(str(done["adapter"]))
    installed = parts.options.adapters_dir / f"{job.id}.gguf"
    parts.options.adapters_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(adapter, installed.with_suffix(".tmp"))
    installed.with_suffix(".tmp").replace(installed)
    cost = parts.billing.settle(job, trained)
    finished = parts.jobs.update(
        job.id, trained_tokens=trained, cost_micros=cost, reserved_micros=0
    )
    publish_adapter(
        parts.models, parts.prices, finished, name, installed, done.get("metrics") or {}
    )
    parts.published()  # callable here before the job says it succeeded
    context.event("info", f"New fine-tuned model created: {name}")
    context.event("info", "The job has successfully completed")
    return parts.jobs.update(job.id, JobStatus.SUCCEEDED, fine_tuned_model=name, control=None)
