"""What fine-tuning costs, in integer micros: the price in effect when the job was created,
rounded up; a hold on the credit the tenant's other open jobs leave; one debit per job."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from tests.tuning.conftest import BASE, TRAINING_PRICE, Tuning
from tokenmill.billing.ledger import EntryKind
from tokenmill.billing.pricing import Price
from tokenmill.errors import Conflict, InsufficientQuota
from tokenmill.tuning.billing import base_model_id
from tokenmill.tuning.status import JobStatus

M = 1_000_000


def test_cost_is_the_trained_tokens_at_the_training_price(tuning: Tuning) -> None:
    job = tuning.record()
    assert TRAINING_PRICE == 2 * M
    assert tuning.billing.cost_micros(job, M) == 2 * M
    assert tuning.billing.cost_micros(job, 1_234_567) == 2_469_134
    assert tuning.billing.cost_micros(job, 0) == 0


def test_cost_is_rounded_up_to_a_whole_micro(tuning: Tuning) -> None:
    tuning.prices.add("tiny", Price(training_micros_per_mtok=3))
    job = tuning.record(base_served_name="tiny@4", model="tiny")
    assert base_model_id(job) == "tiny"
    for tokens, micros in [(0, 0), (1, 1), (333_333, 1), (333_334, 2), (M, 3), (M + 1, 4)]:
        assert tuning.billing.cost_micros(job, tokens) == micros, tokens


def test_a_job_keeps_the_price_in_effect_when_it_was_created(tuning: Tuning) -> None:
    later = tuning.clock.utcnow() + timedelta(seconds=100)
    tuning.prices.add(BASE, Price(training_micros_per_mtok=5 * M), effective_at=later)
    before = tuning.record()
    tuning.clock.advance(200)
    after = tuning.record()
    tuning.ledger.top_up(tuning.alpha.tenant_id, 100 * M)
    assert tuning.billing.cost_micros(before, M) == 2 * M
    assert tuning.billing.cost_micros(after, M) == 5 * M
    assert tuning.billing.settle(before, M) == 2 * M  # settled after the new price took effect
    assert tuning.ledger.balance(tuning.alpha.tenant_id) == 98 * M


def test_a_model_without_a_training_price_trains_free(tuning: Tuning) -> None:
    job = tuning.record(base_served_name="unpriced@1", model="unpriced")
    assert tuning.billing.reserve(job, 50 * M) == 0  # no credit needed
    assert tuning.billing.settle(job, 50 * M) == 0
    assert tuning.ledger.entries(tuning.alpha.tenant_id) == []


def test_a_reservation_may_take_the_whole_balance_and_no_more(tuning: Tuning) -> None:
    tenant = tuning.alpha.tenant_id
    tuning.ledger.top_up(tenant, 4 * M)
    job = tuning.record()
    assert tuning.billing.reserve(job, 2 * M) == 4 * M
    with pytest.raises(InsufficientQuota) as refused:
        tuning.billing.reserve(job, 2 * M + 1)  # 4_000_002 micros
    assert (refused.value.status, refused.value.code) == (429, "insufficient_quota")
    assert "4,000,002" in refused.value.message and "4,000,000" in refused.value.message
    assert tuning.ledger.balance(tenant) == 4 * M  # a reservation writes nothing


def test_no_credit_refuses_any_paid_training(tuning: Tuning) -> None:
    with pytest.raises(InsufficientQuota):
        tuning.billing.reserve(tuning.record(), 1)


def test_a_reservation_counts_what_the_tenants_other_open_jobs_hold(tuning: Tuning) -> None:
    tenant = tuning.alpha.tenant_id
    tuning.ledger.top_up(tenant, 10 * M)
    for status, held in [
        (JobStatus.VALIDATING_FILES, 1 * M),
        (JobStatus.QUEUED, 3 * M),
        (JobStatus.RUNNING, 2 * M),
        (JobStatus.PAUSED, 1 * M),
        (JobStatus.SUCCEEDED, 50 * M),  # ended: holds nothing any more
        (JobStatus.FAILED, 50 * M),
        (JobStatus.CANCELLED, 50 * M),
    ]:
        tuning.record(status=status, reserved_micros=held)
    tuning.record(tuning.beta.tenant_id, status=JobStatus.RUNNING, reserved_micros=90 * M)
    job = tuning.record(reserved_micros=9 * M)  # its own hold is not counted against it
    assert tuning.jobs.held_micros(tenant, besides=job.id) == 7 * M
    assert tuning.billing.reserve(job, 1_500_000) == 3 * M
    with pytest.raises(InsufficientQuota):
        tuning.billing.reserve(job, 1_500_001)


def test_another_tenants_credit_is_not_this_tenants(tuning: Tuning) -> None:
    tuning.ledger.top_up(tuning.beta.tenant_id, 100 * M)
    with pytest.raises(InsufficientQuota):
        tuning.billing.reserve(tuning.record(), 1)
    assert tuning.billing.reserve(tuning.record(tuning.beta.tenant_id), 1) == 2


def test_held_micros_is_zero_without_open_jobs(tuning: Tuning) -> None:
    job = tuning.record(reserved_micros=5 * M)
    assert tuning.jobs.held_micros(tuning.alpha.tenant_id, besides=job.id) == 0
    assert tuning.jobs.held_micros(tuning.beta.tenant_id, besides="ftjob-x") == 0
    assert tuning.jobs.held_micros(tuning.alpha.tenant_id, besides="ftjob-x") == 5 * M


def test_settling_debits_the_trained_tokens_once(tuning: Tuning) -> None:
    tenant = tuning.alpha.tenant_id
    tuning.ledger.top_up(tenant, 10 * M)
    job = tuning.record()
    assert tuning.billing.settle(job, 1_500_000) == 3 * M
    assert tuning.billing.settle(job, 1_500_000) == 3 * M  # a retried worker settles again
    assert tuning.ledger.balance(tenant) == 7 * M
    (debit,) = tuning.ledger.entries(tenant, kinds=[EntryKind.TRAINING])
    assert debit.amount_micros == -3 * M
    assert debit.idempotency_key == f"fine-tune:{job.id}"
    assert job.id in (debit.note or "") and BASE in (debit.note or "")


def test_a_job_is_debited_once_even_when_settled_with_another_count(tuning: Tuning) -> None:
    tenant = tuning.alpha.tenant_id
    tuning.ledger.top_up(tenant, 10 * M)
    job = tuning.record()
    tuning.billing.settle(job, M)
    with contextlib.suppress(Conflict):
        tuning.billing.settle(job, 2 * M)
    assert tuning.ledger.balance(tenant) == 8 * M


def test_each_job_is_settled_on_its_own_and_credit_may_go_below_zero(tuning: Tuning) -> None:
    tenant = tuning.alpha.tenant_id
    tuning.ledger.top_up(tenant, M)
    first, second = tuning.record(), tuning.record()
    assert tuning.billing.settle(first, 250_000) == 500_000
    assert tuning.billing.settle(second, 500_001) == 1_000_002  # trained more than estimated
    assert tuning.ledger.balance(tenant) == -500_002
    keys = {e.idempotency_key for e in tuning.ledger.entries(tenant, kinds=[EntryKind.TRAINING])}
    assert keys == {f"fine-tune:{first.id}", f"fine-tune:{second.id}"}


def test_settling_nothing_writes_nothing(tuning: Tuning) -> None:
    assert tuning.billing.settle(tuning.record(), 0) == 0
    assert tuning.ledger.entries(tuning.alpha.tenant_id) == []
