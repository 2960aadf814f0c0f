"""Fine-tuning jobs as a tenant sees them: created against its own files and the models it may
use, listed and paged, their events and checkpoints; cancel, pause and resume; and another
tenant's job answered as if it did not exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.tuning.conftest import BASE, LEASE_SECONDS, Tuning
from tokenmill.billing.ledger import EntryKind
from tokenmill.errors import Conflict, InvalidRequest, ModelNotFound, NotFound
from tokenmill.store.db import Database
from tokenmill.store.tables import WorkEvent as EventRow
from tokenmill.tuning.service import KIND
from tokenmill.tuning.status import JobStatus
from tokenmill.work.items import WorkStatus

S = JobStatus


def test_a_job_is_created_validating_with_its_work_enqueued(tuning: Tuning) -> None:
    training, validation = tuning.upload(tuning.alpha), tuning.upload(tuning.alpha)
    job = tuning.create(training_file=training, validation_file=validation, metadata={"t": "1"})
    assert (job.status, job.model, job.base_served_name) == (S.VALIDATING_FILES, BASE, "smol@1")
    assert (job.tenant_id, job.key_id) == (tuning.alpha.tenant_id, tuning.alpha.key_id)
    assert (job.training_file_id, job.validation_file_id) == (training, validation)
    assert job.created_at == tuning.clock.utcnow() and job.runs == 0 and job.control is None
    item = tuning.queue.find(f"{KIND}:{job.id}:0")
    assert item is not None and job.work_item_id == item.id
    assert (item.kind, item.payload, item.tenant_id) == (KIND, {"job_id": job.id}, job.tenant_id)
    assert item.status == WorkStatus.QUEUED
    assert tuning.service.get(job.tenant_id, job.id) == job
    assert tuning.create(model="writer").base_served_name == "writer@1"  # completion models too


@pytest.mark.parametrize("model", ["embedder", "cardless", "ft:smol:{alpha}::0123abcd"])
def test_only_a_library_chat_or_completion_model_is_tuned(tuning: Tuning, model: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        tuning.create(model=model.format(alpha=tuning.alpha.tenant_id))
    assert (refused.value.param, refused.value.code) == ("model", "model_not_available")
    assert tuning.jobs.list(None).data == [] and tuning.queue.list(kind=KIND) == []


@pytest.mark.parametrize("model", ["no-such-model", "beta-private"])
def test_a_model_the_tenant_cannot_see_is_404(tuning: Tuning, model: str) -> None:
    with pytest.raises(ModelNotFound):
        tuning.create(model=model)
    assert tuning.create(tuning.beta, model="beta-private").model == "beta-private"


@pytest.mark.parametrize("param", ["training_file", "validation_file"])
def test_files_must_be_the_tenants_own(tuning: Tuning, param: str) -> None:
    theirs = tuning.upload(tuning.beta)
    for file_id in (theirs, "file-nosuch"):
        with pytest.raises(NotFound) as refused:
            tuning.create(**{param: file_id})
        assert (refused.value.status, refused.value.param) == (404, param)
    assert tuning.jobs.list(None).data == [] and tuning.queue.list(kind=KIND) == []


@pytest.mark.parametrize("param", ["training_file", "validation_file"])
def test_files_must_be_uploaded_for_fine_tuning(tuning: Tuning, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        tuning.create(**{param: tuning.upload(tuning.alpha, purpose="batch")})
    assert (refused.value.param, refused.value.code) == (param, "invalid_file_purpose")
    assert tuning.jobs.list(None).data == []


Call = Callable[[Tuning, str, str], Any]
CALLS: dict[str, Call] = {
    "get": lambda t, tenant, job: t.service.get(tenant, job),
    "cancel": lambda t, tenant, job: t.service.cancel(tenant, job),
    "pause": lambda t, tenant, job: t.service.pause(tenant, job),
    "resume": lambda t, tenant, job: t.service.resume(tenant, job),
    "events": lambda t, tenant, job: t.service.events(tenant, job, limit=20, after=None),
    "checkpoints": lambda t, tenant, job: t.service.checkpoints(tenant, job, limit=10, after=None),
}


@pytest.mark.parametrize("call", CALLS)
def test_another_tenants_job_is_404_and_left_alone(tuning: Tuning, call: str) -> None:
    job = tuning.jobs.update(tuning.create().id, S.QUEUED)
    tuning.jobs.add_checkpoint(job.id, 1, {}, "/ckpt")
    with pytest.raises(NotFound) as refused:
        CALLS[call](tuning, tuning.beta.tenant_id, job.id)
    assert (refused.value.status, refused.value.param) == (404, "fine_tuning_job_id")
    assert tuning.jobs.load(job.id) == job
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.QUEUED and not item.cancel_requested
    with pytest.raises(NotFound):
        CALLS[call](tuning, tuning.alpha.tenant_id, "ftjob-nosuch")


def walk(tuning: Tuning, metadata: dict[str, str]) -> tuple[list[str], int]:
    """Every job a client finds paging by ``last_id`` two at a time, and the pages it took."""
    found, after = [], None
    for pages in range(1, 10):
        shape = tuning.service.list(
            tuning.alpha.tenant_id, limit=2, after=after, metadata=metadata
        ).as_openai()
        found += [j["id"] for j in shape["data"]]
        if not shape["has_more"]:
            return found, pages
        after = shape["last_id"]
    return found, -1


def test_jobs_are_listed_newest_first_and_paged(tuning: Tuning) -> None:
    made = []
    for _ in range(5):
        made.append(tuning.record().id)
        tuning.clock.advance(1)
    tuning.record(tuning.beta.tenant_id)
    assert walk(tuning, {}) == (made[::-1], 3)
    assert len(tuning.jobs.list(None).data) == 6


def test_jobs_made_in_the_same_instant_page_without_gaps(tuning: Tuning) -> None:
    made = sorted((tuning.record().id for _ in range(4)), reverse=True)
    assert walk(tuning, {}) == (made, 2)


def test_a_list_refuses_a_bad_limit_or_another_tenants_cursor(tuning: Tuning) -> None:
    theirs = tuning.record(tuning.beta.tenant_id)
    for limit, after in [(0, None), (101, None), (20, theirs.id)]:
        with pytest.raises(InvalidRequest) as refused:
            tuning.jobs.list(tuning.alpha.tenant_id, limit=limit, after=after)
        assert refused.value.param == ("after" if after else "limit")


def test_a_list_filtered_by_metadata_pages_to_every_match(tuning: Tuning) -> None:
    wanted = tuning.record(metadata={"team": "search"}).id
    for _ in range(3):
        tuning.clock.advance(1)
        tuning.record(metadata={"team": "ads"})
    assert walk(tuning, {"team": "search"})[0] == [wanted]


def test_a_job_moves_only_as_its_status_allows(tuning: Tuning) -> None:
    job = tuning.record()
    with pytest.raises(Conflict):
        tuning.jobs.update(job.id, S.RUNNING, trained_tokens=5)
    assert tuning.jobs.load(job.id) == job  # nothing of a refused update is kept
    assert tuning.jobs.update(job.id, S.QUEUED).finished_at is None
    tuning.clock.advance(30)
    error = {"code": "x", "message": "y"}
    ended = tuning.jobs.update(job.id, S.FAILED, error=error)
    assert ended.finished_at == tuning.clock.utcnow() and ended.error == error
    with pytest.raises(ValueError):
        tuning.jobs.update(job.id, colour="red")
    with pytest.raises(NotFound):
        tuning.jobs.update("ftjob-nosuch", S.QUEUED)


def test_checkpoints_are_kept_once_per_step_and_listed_newest_first(tuning: Tuning) -> None:
    job = tuning.record()
    first = tuning.jobs.add_checkpoint(job.id, 10, {"train_loss": 1.0}, "/c/10")
    assert tuning.jobs.add_checkpoint(job.id, 10, {"train_loss": 9.0}, "/c/again") == first
    for step in (20, 30):
        tuning.jobs.add_checkpoint(job.id, step, {}, f"/c/{step}")
    tuning.jobs.add_checkpoint(tuning.record().id, 40, {}, "/other")
    page = tuning.service.checkpoints(job.tenant_id, job.id, limit=2, after=None)
    assert [c.step for c in page.data] == [30, 20] and page.has_more
    rest = tuning.service.checkpoints(job.tenant_id, job.id, limit=2, after=page.data[-1].id)
    assert [c.step for c in rest.data] == [10] and not rest.has_more
    assert rest.data[0].metrics == {"train_loss": 1.0}
    planned = rest.data[0].fine_tuned_model  # named before the job ends, as OpenAI does
    assert planned.startswith("ft:smol:") and planned.endswith(job.id.removeprefix("ftjob-")[:8])
    tuning.jobs.update(job.id, fine_tuned_model="ft:smol:a::1")
    assert tuning.jobs.checkpoints(job.id).data[0].fine_tuned_model == "ft:smol:a::1"


def test_events_are_newest_first_in_openais_shape_and_paged(tuning: Tuning) -> None:
    job = tuning.create()
    for n in range(5):
        tuning.queue.event(job.work_item_id or "", "metrics" if n % 2 else "info", f"e{n}")
    first = tuning.service.events(job.tenant_id, job.id, limit=3, after=None)
    assert [e["message"] for e in first["data"]] == ["e4", "e3", "e2"] and first["has_more"]
    assert first["data"][1]["type"] == "metrics" and first["data"][0]["type"] == "message"
    after = first["data"][-1]["id"]
    rest = tuning.service.events(job.tenant_id, job.id, limit=3, after=after)
    assert [e["message"] for e in rest["data"]] == ["e1", "e0"] and not rest["has_more"]


def test_a_long_jobs_newest_events_are_listed(tuning: Tuning, database: Database) -> None:
    job = tuning.create()
    at = tuning.clock.utcnow()
    with database.session() as session:  # a long run: an event per training step
        session.add_all(
            EventRow(item_id=job.work_item_id, at=at, level="metrics", message=f"step {n}")
            for n in range(1, 10_002)
        )
    newest = tuning.service.events(job.tenant_id, job.id, limit=2, after=None)
    assert [e["message"] for e in newest["data"]] == ["step 10001", "step 10000"]


@pytest.mark.parametrize("after", ["ftevent-abc", "evt_12"])
def test_events_refuse_a_cursor_that_is_not_an_event_id(tuning: Tuning, after: str) -> None:
    job = tuning.create()
    with pytest.raises(InvalidRequest) as refused:
        tuning.service.events(job.tenant_id, job.id, limit=3, after=after)
    assert refused.value.param == "after"


def test_cancelling_a_job_no_worker_holds_ends_it_at_once(tuning: Tuning) -> None:
    job = tuning.create()
    done = tuning.service.cancel(job.tenant_id, job.id)
    assert (done.status, done.control, done.cost_micros) == (S.CANCELLED, None, 0)
    assert done.finished_at == tuning.clock.utcnow() and done.reserved_micros == 0
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.CANCELLED
    assert tuning.ledger.entries(job.tenant_id) == []
    with pytest.raises(Conflict):
        tuning.service.cancel(job.tenant_id, job.id)


def test_cancelling_a_running_job_asks_its_worker(tuning: Tuning) -> None:
    job = tuning.running(trained_tokens=1_000)
    asked = tuning.service.cancel(job.tenant_id, job.id)
    assert (asked.status, asked.control, asked.cost_micros) == (S.RUNNING, "cancel", None)
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.RUNNING and item.cancel_requested
    assert tuning.ledger.entries(job.tenant_id) == []  # billed when the worker stops it


def test_a_job_waiting_for_a_retry_is_cancelled_at_once_and_billed(tuning: Tuning) -> None:
    tuning.ledger.top_up(tuning.alpha.tenant_id, 10_000_000)
    job = tuning.running(trained_tokens=750_000)
    tuning.queue.fail(job.work_item_id or "", "worker-1", "the trainer crashed")
    done = tuning.service.cancel(job.tenant_id, job.id)
    assert (done.status, done.cost_micros, done.reserved_micros) == (S.CANCELLED, 1_500_000, 0)
    assert tuning.ledger.balance(job.tenant_id) == 8_500_000


def test_a_job_whose_worker_died_on_its_last_attempt_can_be_cancelled(tuning: Tuning) -> None:
    job = tuning.running()
    for _ in range(3):  # each lease runs out; the third expiry fails the work item
        tuning.clock.advance(LEASE_SECONDS + 1)
        tuning.queue.claim("worker-2", [KIND], LEASE_SECONDS)
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.FAILED
    assert tuning.service.cancel(job.tenant_id, job.id).status == S.CANCELLED


def test_pausing_a_queued_job_no_worker_holds_pauses_it_at_once(tuning: Tuning) -> None:
    job = tuning.jobs.update(tuning.create().id, S.QUEUED)
    paused = tuning.service.pause(job.tenant_id, job.id)
    assert (paused.status, paused.control) == (S.PAUSED, None)
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.CANCELLED


@pytest.mark.parametrize("status", [S.QUEUED, S.RUNNING])
def test_pausing_a_job_a_worker_holds_asks_it_and_does_not_cancel(
    tuning: Tuning, status: JobStatus
) -> None:
    job = tuning.create()
    tuning.claim()
    job = tuning.jobs.update(job.id, S.QUEUED)  # validated by its worker, not yet training
    if status == S.RUNNING:
        job = tuning.jobs.update(job.id, S.RUNNING)
    asked = tuning.service.pause(job.tenant_id, job.id)
    assert (asked.status, asked.control) == (status, "pause")
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None and item.status == WorkStatus.RUNNING
    assert not item.cancel_requested  # else its worker ends the job cancelled


REFUSED = {
    "pause": [S.VALIDATING_FILES, S.PAUSED, *sorted(S.finished())],
    "resume": [s for s in S if s != S.PAUSED],
    "cancel": sorted(S.finished()),
}


@pytest.mark.parametrize("call", REFUSED)
def test_a_job_in_the_wrong_status_is_a_409(tuning: Tuning, call: str) -> None:
    for status in REFUSED[call]:
        job = tuning.record(status=status)
        with pytest.raises(Conflict) as refused:
            CALLS[call](tuning, job.tenant_id, job.id)
        assert (refused.value.status, refused.value.code) == (409, "invalid_job_status"), status
        assert tuning.jobs.load(job.id) == job


def test_pause_resume_and_cancel_a_job_bills_what_it_trained(tuning: Tuning) -> None:
    tuning.ledger.top_up(tuning.alpha.tenant_id, 10_000_000)
    job = tuning.jobs.update(tuning.create().id, S.QUEUED)
    tuning.queue.event(job.work_item_id or "", "info", "first run")
    tuning.service.pause(job.tenant_id, job.id)
    resumed = tuning.service.resume(job.tenant_id, job.id)
    assert (resumed.status, resumed.runs, resumed.control) == (S.QUEUED, 1, None)
    item = tuning.queue.find(f"{KIND}:{job.id}:1")
    assert item is not None and resumed.work_item_id == item.id != job.work_item_id
    assert item.status == WorkStatus.QUEUED
    tuning.queue.event(item.id, "info", "second run")
    events = tuning.service.events(job.tenant_id, job.id, limit=10, after=None)
    assert [e["message"] for e in events["data"]] == ["second run", "first run"]
    tuning.jobs.update(job.id, S.PAUSED, trained_tokens=400_000)  # the worker paused it again
    done = tuning.service.cancel(job.tenant_id, job.id)
    assert (done.status, done.cost_micros, done.trained_tokens) == (S.CANCELLED, 800_000, 400_000)
    (debit,) = tuning.ledger.entries(job.tenant_id, kinds=[EntryKind.TRAINING])
    assert debit.amount_micros == -800_000
