"""What fine-tuning costs: trained tokens (examples' tokens x epochs) at the base model's
``training_micros_per_mtok`` in effect when the job was created.

Before a job trains, its estimated cost is held against the tenant's prepaid credit (the
balance less what its other unfinished jobs hold): a job the credit cannot cover fails before
it starts. When the job ends, the tokens actually trained are debited once
(``fine-tune:<job id>``): all of them on success, those trained until then on cancel.
"""

from __future__ import annotations

from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import TOKENS_PER_QUOTE, ceil_div
from tokenmill.errors import InsufficientQuota
from tokenmill.tuning.objects import FineTuningJobInfo
from tokenmill.tuning.repository import JobRepository


def base_model_id(job: FineTuningJobInfo) -> str:
    return job.base_served_name.partition("@")[0]


class TrainingBilling:
    def __init__(
        self, prices: PriceBookRepository, ledger: LedgerRepository, jobs: JobRepository
    ) -> None:
        self._prices = prices
        self._ledger = ledger
        self._jobs = jobs

    def cost_micros(self, job: FineTuningJobInfo, trained_tokens: int) -> int:
        price = self._prices.load().price_at(base_model_id(job), job.created_at)
        return ceil_div(trained_tokens * price.training_micros_per_mtok, TOKENS_PER_QUOTE)

    def reserve(self, job: FineTuningJobInfo, estimated_tokens: int) -> int:
        """The estimate's cost, once the credit left covers it (else ``InsufficientQuota``)."""
        cost = self.cost_micros(job, estimated_tokens)
        if cost == 0:
            return 0
        available = self._ledger.balance(job.tenant_id) - self._jobs.held_micros(
            job.tenant_id, besides=job.id
        )
        if cost > available:
            raise InsufficientQuota(
                f"Training about {estimated_tokens:,} tokens costs {cost:,} micros; the "
                f"tenant's credit covers {max(available, 0):,}. Top up, or train fewer "
                "examples or epochs.",
                code="insufficient_quota",
            )
        return cost

    def settle(self, job: FineTuningJobInfo, trained_tokens: int) -> int:
        """Debits ``trained_tokens`` once per job; returns the amount."""
        cost = self.cost_micros(job, trained_tokens)
        if cost > 0:
            self._ledger.charge_training(
                job.tenant_id,
                cost,
                idempotency_key=f"fine-tune:{job.id}",
                note=f"fine-tuning {job.id}: {trained_tokens} tokens of {base_model_id(job)}",
            )
        return cost
