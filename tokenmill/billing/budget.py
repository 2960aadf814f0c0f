"""Budget admission, decided before a request runs: can the most it may cost be covered?

Three things must cover it: the tenant's prepaid credit (balance minus what is reserved),
the tenant's monthly cap and the key's monthly cap (spent this month plus reserved). The
counters that hold those numbers live behind ``BudgetCounters`` (in-process or Redis); they
call ``decide`` (or, in Redis, a Lua script that mirrors it) atomically with the reservation.

Pure: no I/O, no clock. The month is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tokenmill.billing.pricing import Price, max_cost_micros

# Bytes of request body the prompt's tokens are bounded by, plus a margin for what a chat
# template adds (role markers, a default system prompt) beyond the JSON's own overhead.
TEMPLATE_MARGIN_TOKENS = 64


def month_of(moment: datetime) -> str:
    """``"2026-11"``: the calendar month (UTC) a cap counts in."""
    return f"{moment.year:04d}-{moment.month:02d}"


def prompt_tokens_bound(body_bytes: int, context_tokens: int) -> int:
    """No tokenizer makes more tokens than the body has bytes (plus the template's few)."""
    return min(body_bytes + TEMPLATE_MARGIN_TOKENS, context_tokens)


def completion_tokens_bound(max_tokens: int | None, choices: int, context_tokens: int) -> int:
    per_choice = context_tokens if max_tokens is None else min(max_tokens, context_tokens)
    return per_choice * max(choices, 1)


def reservation_micros(
    body_bytes: int, max_tokens: int | None, choices: int, context_tokens: int, price: Price
) -> int:
    """The most a request can cost: the upper bound that is reserved before it runs."""
    return max_cost_micros(
        prompt_tokens_bound(body_bytes, context_tokens),
        completion_tokens_bound(max_tokens, choices, context_tokens),
        price,
    )


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    tenant_id: str
    key_id: str
    month: str
    amount_micros: int
    tenant_cap_micros: int | None = None
    key_cap_micros: int | None = None
    request_id: str = ""  # what the reservation is held under until it is settled


@dataclass(frozen=True, slots=True)
class BudgetState:
    """What the counters hold for one request's tenant and key, before it is reserved."""

    available_micros: int  # credit balance minus settled spend minus reservations
    tenant_month_micros: int  # spent plus reserved this month
    key_month_micros: int


REFUSAL_MESSAGES = {
    "credit": "You exceeded your current quota: the tenant's prepaid credit cannot cover this "
    "request. Top up credit, or ask for fewer tokens (max_tokens).",
    "tenant_cap": "The tenant's monthly spending cap is reached.",
    "key_cap": "This API key's monthly spending cap is reached.",
}


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    reason: str  # a key of REFUSAL_MESSAGES

    @property
    def message(self) -> str:
        return REFUSAL_MESSAGES[self.reason]


def decide(request: BudgetRequest, state: BudgetState) -> BudgetRefusal | None:
    """``None`` admits (the counters then reserve ``amount_micros``); a refusal says why."""
    amount = request.amount_micros
    if amount <= 0:
        return None
    if state.available_micros < amount:
        return BudgetRefusal("credit")
    cap = request.tenant_cap_micros
    if cap is not None and state.tenant_month_micros + amount > cap:
        return BudgetRefusal("tenant_cap")
    cap = request.key_cap_micros
    if cap is not None and state.key_month_micros + amount > cap:
        return BudgetRefusal("key_cap")
    return None
