"""The Batch API's object (OpenAI's ``batch``) and the checks on what a client may ask for."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tokenmill.batches.lines import ENDPOINTS
from tokenmill.batches.status import BatchStatus
from tokenmill.errors import InvalidRequest

COMPLETION_WINDOWS = {"24h": timedelta(hours=24)}


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


def parse_endpoint(raw: object) -> str:
    if raw is None or raw == "":
        raise InvalidRequest("Missing required parameter: 'endpoint'.", param="endpoint")
    if raw not in ENDPOINTS:
        raise InvalidRequest(
            f"Invalid value for 'endpoint': {raw!r}; expected one of {', '.join(ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    return str(raw)


def parse_completion_window(raw: object) -> timedelta:
    if raw is None or raw == "":
        raise InvalidRequest(
            "Missing required parameter: 'completion_window'.", param="completion_window"
        )
    if not isinstance(raw, str) or raw not in COMPLETION_WINDOWS:
        raise InvalidRequest(
            f"Invalid value for 'completion_window': {raw!r}; expected '24h'.",
            param="completion_window",
            code="invalid_value",
        )
    return COMPLETION_WINDOWS[raw]


def _seconds(at: datetime | None) -> int | None:
    return int(at.timestamp()) if at is not None else None


@dataclass(frozen=True, slots=True)
class RequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0

    def as_openai(self) -> dict[str, int]:
        return {"total": self.total, "completed": self.completed, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class BatchInfo:
    id: str
    tenant_id: str
    key_id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    counts: RequestCounts
    created_at: datetime
    expires_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    work_item_id: str | None = None
    times: dict[str, datetime | None] = field(default_factory=dict)  # ``in_progress_at``...

    def as_openai(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status.value,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": _seconds(self.created_at),
            "expires_at": _seconds(self.expires_at),
            "request_counts": self.counts.as_openai(),
            "metadata": dict(self.metadata),
        }
        for status in BatchStatus:
            if status.timestamp is not None:
                body[status.timestamp] = _seconds(self.times.get(status.timestamp))
        return body
