"""A batch's life as OpenAI tells it, and the moves between its statuses.

    validating ──▶ in_progress ──▶ finalizing ──▶ completed
        │               │
        ├──▶ failed ◀───┼──▶ expired      (the completion window passed)
        └───────────────┴──▶ cancelling ──▶ cancelled

Each status has a timestamp of the same name (``in_progress_at``...) set when it is entered.
"""

from __future__ import annotations

from enum import StrEnum

from tokenmill.errors import Conflict


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @classmethod
    def finished(cls) -> frozenset[BatchStatus]:
        return frozenset({cls.FAILED, cls.COMPLETED, cls.EXPIRED, cls.CANCELLED})

    @property
    def timestamp(self) -> str | None:
        """The batch column set when this status is entered (validating has ``created_at``)."""
        return None if self is BatchStatus.VALIDATING else f"{self.value}_at"


MOVES: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.VALIDATING: frozenset(
        {BatchStatus.IN_PROGRESS, BatchStatus.FAILED, BatchStatus.CANCELLING, BatchStatus.EXPIRED}
    ),
    BatchStatus.IN_PROGRESS: frozenset(
        {BatchStatus.FINALIZING, BatchStatus.CANCELLING, BatchStatus.EXPIRED, BatchStatus.FAILED}
    ),
    BatchStatus.FINALIZING: frozenset({BatchStatus.COMPLETED}),
    BatchStatus.CANCELLING: frozenset({BatchStatus.CANCELLED}),
}


def can_move(current: BatchStatus, target: BatchStatus) -> bool:
    return target in MOVES.get(current, frozenset())


def move(current: BatchStatus, target: BatchStatus) -> BatchStatus:
    """``target``, or ``Conflict`` (409) when a batch in ``current`` cannot go there."""
    if not can_move(current, target):
        raise Conflict(
            f"A batch that is {current.value} cannot become {target.value}.",
            code="invalid_batch_status",
        )
    return target


def can_cancel(current: BatchStatus) -> bool:
    return can_move(current, BatchStatus.CANCELLING)
