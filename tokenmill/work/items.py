"""Work items as the rest of the platform sees them: what to do, how it went, what it said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class WorkStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def finished(cls) -> frozenset[WorkStatus]:
        return frozenset({cls.SUCCEEDED, cls.FAILED, cls.CANCELLED})


@dataclass(frozen=True, slots=True)
class WorkItem:
    id: str
    kind: str
    tenant_id: str | None
    payload: dict[str, Any]
    status: WorkStatus
    priority: int
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    progress: float | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in WorkStatus.finished()

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "work_item",
            "id": self.id,
            "kind": self.kind,
            "tenant_id": self.tenant_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "progress": self.progress,
            "error": self.error,
            "result": self.result,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True, slots=True)
class QueueCensus:
    """The queue at a glance: items by (kind, status), and for each kind with queued items
    that are due, since when the longest-waiting of them has been due."""

    counts: dict[tuple[str, WorkStatus], int]
    oldest_due: dict[str, datetime]


@dataclass(frozen=True, slots=True)
class WorkEvent:
    id: int
    item_id: str
    at: datetime
    level: str  # info, warn, error, metrics
    message: str
    data: dict[str, Any] | None = None


def retry_delay(attempts: int, base_seconds: float = 2.0, cap_seconds: float = 300.0) -> timedelta:
    """How long a failed item waits before its next attempt: doubling from ``base_seconds``."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempts - 1)))
