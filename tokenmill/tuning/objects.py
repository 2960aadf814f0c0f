"""Fine-tuning's objects in OpenAI's shapes (``fine_tuning.job``, ``.checkpoint``, ``.event``)
and the checks on what a client may ask for."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.tuning.status import JobStatus
from tokenmill.work.items import WorkEvent

AUTO = "auto"
# name: (smallest, largest, integer?)
HYPERPARAMETERS: dict[str, tuple[float, float, bool]] = {
    "n_epochs": (1, 50, True),
    "batch_size": (1, 256, True),
    "learning_rate_multiplier": (0.0, 10.0, False),
}
SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SEED = 2**31 - 1


def new_job_id() -> str:
    return f"ftjob-{secrets.token_hex(12)}"


def new_checkpoint_id() -> str:
    return f"ftckpt-{secrets.token_hex(12)}"


def _timestamp(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


def parse_hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    """The job's hyperparameters, each ``"auto"`` or a number in its range, from
    ``method.supervised.hyperparameters`` or the older top-level ``hyperparameters``."""
    method = body.get("method")
    raw: object = body.get("hyperparameters")
    if method is not None:
        if not isinstance(method, dict) or method.get("type", "supervised") != "supervised":
            raise InvalidRequest(
                "Only the 'supervised' fine-tuning method is offered.",
                param="method.type",
                code="invalid_value",
            )
        supervised = method.get("supervised")
        supervised = {} if supervised is None else supervised
        if not isinstance(supervised, dict):
            raise InvalidRequest("'method.supervised' must be an object.", param="method")
        raw = supervised.get("hyperparameters", raw)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise InvalidRequest("'hyperparameters' must be an object.", param="hyperparameters")
    unknown = sorted(set(raw) - set(HYPERPARAMETERS))
    if unknown:
        raise InvalidRequest(
            f"Unknown hyperparameter: {unknown[0]}.", param=f"hyperparameters.{unknown[0]}"
        )
    return {name: _hyperparameter(name, raw.get(name, AUTO)) for name in HYPERPARAMETERS}


def _hyperparameter(name: str, value: object) -> int | float | str:
    if value == AUTO:
        return AUTO
    low, high, integer = HYPERPARAMETERS[name]
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or (integer and float(value) != int(value))
    ):
        kind = "an integer" if integer else "a number"
        raise InvalidRequest(f"'{name}' must be 'auto' or {kind}.", param=f"hyperparameters.{name}")
    number = int(value) if integer else float(value)
    if not low <= number <= high or (not integer and number <= 0):
        bounds = f"from {low:g} to {high:g}" if integer else f"above 0 and at most {high:g}"
        raise InvalidRequest(
            f"'{name}' must be {bounds}.",
            param=f"hyperparameters.{name}",
            code="invalid_value",
        )
    return number


def parse_suffix(raw: object) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not SUFFIX.fullmatch(raw):
        raise InvalidRequest(
            "'suffix' is 1 to 64 letters, digits, '-' or '_'.", param="suffix", code="invalid_value"
        )
    return raw


def parse_seed(raw: object) -> int:
    if raw is None:
        return secrets.randbelow(MAX_SEED)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_SEED:
        raise InvalidRequest(
            f"'seed' is an integer from 0 to {MAX_SEED}.", param="seed", code="invalid_value"
        )
    return raw


def fine_tuned_name(base: str, tenant_id: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's form, ``ft:<base>:<owner>:<suffix>:<id>`` (the id is the job's, shortened)."""
    short = job_id.removeprefix("ftjob-")[:8]
    return f"ft:{base}:{tenant_id}:{(suffix or '').lower()}:{short}"


@dataclass(frozen=True, slots=True)
class FineTuningJobInfo:
    id: str
    tenant_id: str
    key_id: str
    model: str
    base_served_name: str
    training_file_id: str
    validation_file_id: str | None
    suffix: str | None
    seed: int
    hyperparameters: dict[str, Any]
    status: JobStatus
    created_at: datetime
    resolved: dict[str, Any] | None = None
    control: str | None = None
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    estimated_tokens: int | None = None
    reserved_micros: int = 0
    cost_micros: int | None = None
    validation: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    work_item_id: str | None = None
    runs: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    estimated_finish: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in JobStatus.finished()

    def as_openai(self) -> dict[str, Any]:
        hyperparameters = {**self.hyperparameters, **(self.resolved or {})}
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": _timestamp(self.created_at),
            "finished_at": _timestamp(self.finished_at),
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.tenant_id,
            "result_files": [],
            "status": self.status.value,
            "validation_file": self.validation_file_id,
            "training_file": self.training_file_id,
            "hyperparameters": hyperparameters,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            "trained_tokens": self.trained_tokens,
            "error": self.error,
            "seed": self.seed,
            "estimated_finish": _timestamp(self.estimated_finish),
            "integrations": [],
            "metadata": self.metadata or None,
            "user_provided_suffix": self.suffix,
            "validation_reports": self.validation,  # per file: every bad line, token counts
            "pending_action": self.control,  # "pause" or "cancel" asked, not yet done
            "usage_metrics": {
                "estimated_trained_tokens": self.estimated_tokens,
                "reserved_micros": self.reserved_micros,
                "cost_micros": self.cost_micros,
            },
        }


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    id: str
    job_id: str
    step: int
    metrics: dict[str, Any]
    path: str
    created_at: datetime
    fine_tuned_model: str  # the fine-tune's name, known from the job's start

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job.checkpoint",
            "id": self.id,
            "created_at": _timestamp(self.created_at),
            "fine_tuned_model_checkpoint": f"{self.fine_tuned_model}:ckpt-step-{self.step}",
            "step_number": self.step,
            "metrics": {"step": self.step, **self.metrics},
            "fine_tuning_job_id": self.job_id,
        }


def event_as_openai(event: WorkEvent) -> dict[str, Any]:
    """A work event as a job event: per-step metrics are ``type: metrics``."""
    metrics = event.level == "metrics"
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{event.id}",
        "created_at": _timestamp(event.at),
        "level": "info" if metrics else event.level,
        "message": event.message,
        "data": event.data or {},
        "type": "metrics" if metrics else "message",
    }
