"""A fine-tuning job's statuses and the moves between them: each allowed move, and every other
one refused with 409."""

from __future__ import annotations

import itertools

import pytest

from tokenmill.errors import Conflict
from tokenmill.tuning.status import JobStatus, can_move, move

S = JobStatus
# Written out here, not read from the module: the life OpenAI describes, with pause.
ALLOWED = {
    S.VALIDATING_FILES: {S.QUEUED, S.FAILED, S.CANCELLED},
    S.QUEUED: {S.RUNNING, S.PAUSED, S.FAILED, S.CANCELLED},
    S.RUNNING: {S.SUCCEEDED, S.PAUSED, S.FAILED, S.CANCELLED},
    S.PAUSED: {S.QUEUED, S.CANCELLED},
    S.SUCCEEDED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}
PAIRS = list(itertools.product(JobStatus, repeat=2))
GOOD = [(a, b) for a, b in PAIRS if b in ALLOWED[a]]
BAD = [(a, b) for a, b in PAIRS if b not in ALLOWED[a]]


def test_the_statuses_are_openais_and_paused() -> None:
    assert {s.value for s in JobStatus} == {
        "validating_files",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "paused",
    }


def test_finished_statuses_are_the_three_ends() -> None:
    assert JobStatus.finished() == {S.SUCCEEDED, S.FAILED, S.CANCELLED}


@pytest.mark.parametrize("pair", GOOD, ids=[f"{a}->{b}" for a, b in GOOD])
def test_an_allowed_move_returns_its_target(pair: tuple[JobStatus, JobStatus]) -> None:
    current, target = pair
    assert can_move(current, target)
    assert move(current, target) is target


@pytest.mark.parametrize("pair", BAD, ids=[f"{a}->{b}" for a, b in BAD])
def test_every_other_move_is_a_409(pair: tuple[JobStatus, JobStatus]) -> None:
    current, target = pair
    assert not can_move(current, target)
    with pytest.raises(Conflict) as refused:
        move(current, target)
    assert refused.value.status == 409
    assert refused.value.code == "invalid_job_status"
    assert current.value in refused.value.message and target.value in refused.value.message


def test_the_table_covers_every_pair() -> None:
    assert len(GOOD) == 13 and len(GOOD) + len(BAD) == len(JobStatus) ** 2


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
def test_no_status_moves_to_itself(status: JobStatus) -> None:
    assert not can_move(status, status)


@pytest.mark.parametrize("status", sorted(set(JobStatus) - JobStatus.finished()), ids=str)
def test_any_job_that_has_not_ended_can_be_cancelled_or_still_succeed(status: JobStatus) -> None:
    assert can_move(status, S.CANCELLED)
    seen, frontier = {status}, [status]
    while frontier:
        for nxt in ALLOWED[frontier.pop()] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    assert S.SUCCEEDED in seen


@pytest.mark.parametrize("status", sorted(JobStatus.finished()), ids=str)
def test_a_finished_job_never_moves_again(status: JobStatus) -> None:
    assert not any(can_move(status, target) for target in JobStatus)


def test_a_job_is_paused_only_after_validation_and_resumes_through_queued() -> None:
    assert not can_move(S.VALIDATING_FILES, S.PAUSED)
    assert [s for s in JobStatus if can_move(S.PAUSED, s)] == [S.QUEUED, S.CANCELLED]
    assert not can_move(S.PAUSED, S.RUNNING) and not can_move(S.PAUSED, S.FAILED)
