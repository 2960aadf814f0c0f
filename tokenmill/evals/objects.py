"""An evaluation as the admin API shows it, its statuses, and the checks on what is asked.

Asked for: a source (a ``fine-tune`` file, or a dataset version's split), one or more models,
the metrics, a regex pattern when ``regex`` is one of them, an optional example limit, and
whether the results are published on the models' cards (a platform admin's figure).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.evals.metrics import METRICS

MAX_MODELS = 8
MAX_EXAMPLES = 5000
DEFAULT_SPLIT = "validation"


class EvalStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def finished(cls) -> frozenset[EvalStatus]:
        return frozenset({cls.COMPLETED, cls.FAILED, cls.CANCELLED})


def new_eval_id() -> str:
    return f"eval_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class EvalSource:
    """A file id (the whole file is the split), or a dataset, its version (None: the latest)
    and split."""

    file_id: str | None = None
    dataset: str | None = None
    version: int | None = None
    split: str = DEFAULT_SPLIT

    def as_json(self) -> dict[str, Any]:
        if self.file_id is not None:
            return {"file_id": self.file_id}
        return {"dataset": self.dataset, "version": self.version, "split": self.split}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalSource:
        if data.get("file_id"):
            return cls(file_id=str(data["file_id"]))
        return cls(
            dataset=str(data["dataset"]),
            version=data.get("version"),
            split=str(data.get("split") or DEFAULT_SPLIT),
        )


@dataclass(frozen=True, slots=True)
class EvalRequest:
    source: EvalSource
    models: tuple[str, ...]
    metrics: tuple[str, ...]
    regex: str | None = None
    limit: int | None = None
    publish: bool = False


@dataclass(frozen=True, slots=True)
class EvalInfo:
    id: str
    tenant_id: str
    key_id: str
    request: EvalRequest
    status: EvalStatus
    created_at: datetime
    progress: float = 0.0
    examples: int | None = None  # in the split, once read
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> summary
    error: str | None = None
    work_item_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        request = self.request
        return {
            "object": "evaluation",
            "id": self.id,
            "tenant_id": self.tenant_id,
            "status": self.status.value,
            "source": request.source.as_json(),
            "models": list(request.models),
            "metrics": list(request.metrics),
            "regex": request.regex,
            "limit": request.limit,
            "published": request.publish,
            "progress": self.progress,
            "examples": self.examples,
            "results": [
                {"model": model, **self.results[model]}
                for model in request.models
                if model in self.results
            ],
            "error": self.error,
            "created_at": _seconds(self.created_at),
            "started_at": _seconds(self.started_at),
            "finished_at": _seconds(self.finished_at),
        }


def _seconds(at: datetime | None) -> int | None:
    return int(at.timestamp()) if at is not None else None


def parse_request(body: dict[str, Any]) -> EvalRequest:
    """The create body, checked (400 naming the field); model visibility is checked apart."""
    return EvalRequest(
        source=_source(body),
        models=_models(body.get("models", body.get("model"))),
        metrics=_metrics(body.get("metrics")),
        regex=_regex(body),
        limit=_limit(body.get("limit")),
        publish=_flag(body, "publish"),
    )


def _source(body: dict[str, Any]) -> EvalSource:
    file_id, dataset = body.get("file_id"), body.get("dataset")
    if (file_id is None) == (dataset is None):
        raise InvalidRequest(
            "Give either 'file_id' (a fine-tune file) or 'dataset' (a dataset id).",
            param="dataset",
        )
    if file_id is not None:
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequest("'file_id' is a file id.", param="file_id")
        return EvalSource(file_id=file_id)
    if not isinstance(dataset, str) or not dataset:
        raise InvalidRequest("'dataset' is a dataset id.", param="dataset")
    version = body.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidRequest("'version' is a version number (1, 2, ...).", param="version")
    split = body.get("split", DEFAULT_SPLIT)
    if split not in ("train", "validation"):
        raise InvalidRequest("'split' is 'train' or 'validation'.", param="split")
    return EvalSource(dataset=dataset, version=version, split=split)


def _models(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if (
        not isinstance(raw, list)
        or not raw
        or len(raw) > MAX_MODELS
        or not all(isinstance(m, str) and m for m in raw)
    ):
        raise InvalidRequest(
            f"'models' is a list of 1 to {MAX_MODELS} model names.", param="models"
        )
    return tuple(dict.fromkeys(raw))


def _metrics(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ("exact_match", "loss")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(m in METRICS for m in raw):
        raise InvalidRequest(f"'metrics' is a list of: {', '.join(METRICS)}.", param="metrics")
    return tuple(dict.fromkeys(raw))


def _regex(body: dict[str, Any]) -> str | None:
    pattern = body.get("regex")
    wanted = "regex" in (body.get("metrics") or ())
    if pattern is None:
        if wanted:
            raise InvalidRequest("The regex metric needs a 'regex' pattern.", param="regex")
        return None
    if not isinstance(pattern, str) or not pattern:
        raise InvalidRequest("'regex' is a pattern (Python's re syntax).", param="regex")
    try:
        re.compile(pattern)
    except re.error as error:
        raise InvalidRequest(f"'regex' does not compile: {error}.", param="regex") from None
    return pattern


def _limit(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_EXAMPLES:
        raise InvalidRequest(f"'limit' is an integer from 1 to {MAX_EXAMPLES}.", param="limit")
    return raw


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' is a boolean.", param=name)
    return value
