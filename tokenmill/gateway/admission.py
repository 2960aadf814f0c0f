"""Admission: before a request is routed, reserve the most it can cost and its share of
every rate limit that applies; after it ends, settle both to what it really used.

``admit`` returns a ``Ticket``, which the request's ``Meter`` holds: the meter prices the
usage it records and settles the ticket in the same step, on every path (answered, failed,
refused, client gone). Settling twice is a no-op, so a release can never count twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tokenmill.billing.budget import (
    BudgetRequest,
    completion_tokens_bound,
    month_of,
    prompt_tokens_bound,
    reservation_micros,
)
from tokenmill.billing.pricing import TokenUsage, max_cost_micros
from tokenmill.billing.sync import BillingSync, Limits, TenantTerms
from tokenmill.clock import Clock
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import InsufficientQuota, MeteringUnavailable, RateLimited
from tokenmill.gateway.directory import ModelEntry
from tokenmill.gateway.limits.base import RateCounters
from tokenmill.gateway.limits.policy import (
    RateRequest,
    ScopeLimits,
    rate_headers,
    retry_after_header,
)
from tokenmill.protocol.tiers import ServiceTier

log = logging.getLogger(__name__)

METERING_RETRY_AFTER_SECONDS = 5


class Metering(Protocol):
    """Whether usage can be recorded safely now (the usage journal)."""

    def metering_ok(self, now: float) -> bool: ...


@dataclass(slots=True)
class Ticket:
    """What admission took for one request; ``settle`` gives back what was not used."""

    admission: Admission
    budget: BudgetRequest | None = None
    rate: RateRequest | None = None
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
    tier: ServiceTier = ServiceTier.DEFAULT  # priced in; may fall to a cheaper one later

    def cost_micros(self, model: str, usage: TokenUsage, at: datetime) -> int:
        return self.admission.sync.view.prices.cost_micros(model, usage, at, self.tier)

    def settle(self, actual_micros: int, actual_tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        if self.budget is not None:
            self.admission.later(self.admission.sync.counters.settle(self.budget, actual_micros))
        if self.rate is not None:
            self.admission.later(self.admission.rates.finish(self.rate, actual_tokens))

    def release(self) -> None:
        self.settle(0, 0)

    async def release_now(self) -> None:
        """Gives everything back before returning (a check that used nothing)."""
        if self.settled:
            return
        self.settled = True
        if self.budget is not None:
            await self.admission.sync.counters.settle(self.budget, 0)
        if self.rate is not None:
            await self.admission.rates.finish(self.rate, 0)


def scopes_of(principal: Principal, terms: TenantTerms, model: str) -> tuple[ScopeLimits, ...]:
    """The limited scopes a request counts in: its key, its tenant, its tenant's model."""
    model_limits = terms.model_limits.get(model, Limits())
    scopes = (
        ScopeLimits(
            f"key:{principal.key_id}",
            principal.rpm_limit,
            principal.tpm_limit,
            principal.concurrency_limit,
        ),
        ScopeLimits(
            f"tenant:{principal.tenant_id}",
            terms.limits.rpm,
            terms.limits.tpm,
            terms.limits.concurrency,
        ),
        ScopeLimits(
            f"tenant-model:{principal.tenant_id}:{model}",
            model_limits.rpm,
            model_limits.tpm,
            model_limits.concurrency,
        ),
    )
    return tuple(scope for scope in scopes if scope.limited)


@dataclass(slots=True)
class Admission:
    sync: BillingSync
    rates: RateCounters
    clock: Clock
    metering: Metering | None = None  # None: usage is always safe (no journal)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    async def admit(
        self,
        principal: Principal,
        model: ModelEntry,
        max_tokens: int | None,
        choices: int,
        body_bytes: int,
        request_id: str,
        *,
        prompt_tokens: int | None = None,
        tier: ServiceTier = ServiceTier.DEFAULT,
    ) -> Ticket:
        """Raises ``InsufficientQuota`` when credit or a cap cannot cover the request, and
        ``RateLimited`` (with ``Retry-After``) when a rate limit is reached: both 429.

        The prompt is bounded by ``body_bytes``, or is ``prompt_tokens`` when the caller knows
        better (work the platform embeds for a tenant: a file's text, a search's queries).

        The platform's own admins (the operator) are metered and billed like anyone, but not
        held to prepaid credit: a fresh install answers its admin before anyone tops up.

        Raises ``MeteringUnavailable`` (503, with ``Retry-After``) while usage cannot be
        recorded safely: nothing is served that could go unmetered."""
        if self.metering is not None and not self.metering.metering_ok(self.clock.monotonic()):
            raise MeteringUnavailable(
                "Usage cannot be recorded right now (the usage journal cannot write and the "
                "database is behind); try again shortly.",
                headers=retry_after_header(METERING_RETRY_AFTER_SECONDS),
            )
        now = self.clock.utcnow()
        view = self.sync.view
        terms = view.terms_of(principal.tenant_id)
        price = view.prices.price_at(model.id, now, tier)
        context = model.context_tokens
        ticket = Ticket(self, tier=tier)
        if not price.is_free and principal.role != Role.PLATFORM_ADMIN:
            amount = (
                reservation_micros(body_bytes, max_tokens, choices, context, price)
                if prompt_tokens is None
                else max_cost_micros(prompt_tokens, 0, price)
            )
            budget = BudgetRequest(
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                month=month_of(now),
                amount_micros=amount,
                tenant_cap_micros=terms.monthly_budget_micros,
                key_cap_micros=principal.monthly_budget_micros,
                request_id=request_id,
            )
            refusal = await self.sync.counters.reserve(budget)
            if refusal is not None:
                raise InsufficientQuota(refusal.message)
            ticket.budget = budget
        scopes = scopes_of(principal, terms, model.id)
        if scopes:
            tokens = (
                prompt_tokens_bound(body_bytes, context) if prompt_tokens is None else prompt_tokens
            ) + completion_tokens_bound(max_tokens, choices, context)
            rate = RateRequest(request_id, scopes, tokens, now.timestamp())
            try:
                decision = await self.rates.acquire(rate)
            except BaseException:  # the rate counters are unreachable: nothing stays reserved
                ticket.release()
                raise
            if not decision.admitted:
                ticket.release()
                raise RateLimited(
                    decision.message, headers=retry_after_header(decision.retry_after_seconds)
                )
            ticket.rate = rate
            ticket.headers = rate_headers(decision)
        return ticket

    def later(self, step: Coroutine[Any, Any, None]) -> None:
        """Runs a counter update without making the caller (a ``finally``) wait for it."""
        task = asyncio.get_running_loop().create_task(step)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("settling a reservation failed", exc_info=task.exception())

    async def start(self) -> None:
        await self.sync.start()

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self.sync.counters.close()
        await self.rates.close()
