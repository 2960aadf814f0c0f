from __future__ import annotations

import itertools

import pytest

from tokenmill.batches.status import BatchStatus as S
from tokenmill.batches.status import can_cancel, can_move, move
from tokenmill.errors import Conflict


def test_the_happy_path_and_its_timestamps() -> None:
    path = [S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.COMPLETED]
    for current, target in itertools.pairwise(path):
        assert move(current, target) is target
    assert [s.timestamp for s in path] == [None, "in_progress_at", "finalizing_at", "completed_at"]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.VALIDATING, S.FAILED),
        (S.VALIDATING, S.CANCELLING),
        (S.IN_PROGRESS, S.CANCELLING),
        (S.IN_PROGRESS, S.EXPIRED),
        (S.CANCELLING, S.CANCELLED),
    ],
)
def test_allowed_moves(current: S, target: S) -> None:
    assert can_move(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.COMPLETED, S.CANCELLING),
        (S.FAILED, S.IN_PROGRESS),
        (S.CANCELLED, S.CANCELLING),
        (S.FINALIZING, S.CANCELLING),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.VALIDATING, S.COMPLETED),
        (S.CANCELLING, S.COMPLETED),
    ],
)
def test_refused_moves_are_a_409(current: S, target: S) -> None:
    assert not can_move(current, target)
    with pytest.raises(Conflict) as refused:
        move(current, target)
    assert refused.value.status == 409 and refused.value.code == "invalid_batch_status"


def test_finished_batches_cannot_be_cancelled() -> None:
    assert {s for s in S if not can_cancel(s)} == S.finished() | {S.CANCELLING, S.FINALIZING}
