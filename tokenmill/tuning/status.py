"""A fine-tuning job's life as OpenAI tells it, with pause, and the moves between statuses.

    validating_files ──▶ queued ──▶ running ──▶ succeeded
           │               │  ▲        │
           │               ▼  │        ├──▶ paused ──▶ queued (resume)
           └──▶ failed ◀───┴──┴────────┤
                           cancelled ◀─┘  (from any status that has not ended)

A running job asked to pause or cancel keeps its status until its worker stops it (within a
training step); ``control`` on the job says what was asked.
"""

from __future__ import annotations

from enum import StrEnum

from tokenmill.errors import Conflict


class JobStatus(StrEnum):
    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def finished(cls) -> frozenset[JobStatus]:
        return frozenset({cls.SUCCEEDED, cls.FAILED, cls.CANCELLED})


MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.VALIDATING_FILES: frozenset(
        {JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.PAUSED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in MOVES.get(current, frozenset())


def move(current: JobStatus, target: JobStatus) -> JobStatus:
    """``target``, or ``Conflict`` (409) when a job in ``current`` cannot go there."""
    if not can_move(current, target):
        raise Conflict(
            f"A fine-tuning job that is {current.value} cannot become {target.value}.",
            code="invalid_job_status",
        )
    return target
