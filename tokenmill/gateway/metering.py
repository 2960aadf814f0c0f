"""Per-request metering: one usage event for every authenticated request, on every path."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tokenmill.billing.pricing import TokenUsage
from tokenmill.billing.usage import UsageEvent
from tokenmill.clock import Clock
from tokenmill.control.keys import Principal
from tokenmill.errors import TokenmillError


class UsageSink(Protocol):
    def record(self, event: UsageEvent) -> Awaitable[None] | None:
        """Takes the event; what it returns, if anything, is done once the event is durable."""
        ...


class Settlement(Protocol):
    """What admission gave the request: how to price its usage, and its reservation."""

    def cost_micros(self, model: str, usage: TokenUsage, at: datetime) -> int: ...

    def settle(self, actual_micros: int, actual_tokens: int) -> None: ...


@dataclass(slots=True)
class TokenCounts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> TokenCounts | None:
        """A replica's ``usage``; a count that is not a whole number of at least zero is 0."""
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details")
        return cls(
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_count(details.get("cached_tokens") if isinstance(details, dict) else 0),
        )

    def bounded(self, prompt: int | None, completion: int | None) -> TokenCounts:
        """No more than the request could have used (its model's context for the prompt,
        its ``max_tokens`` for each choice): a replica's count past that is not billed."""
        made = self.completion_tokens
        prompt_tokens = self.prompt_tokens if prompt is None else min(self.prompt_tokens, prompt)
        completion_tokens = made if completion is None else min(made, completion)
        return TokenCounts(prompt_tokens, completion_tokens, min(self.cached_tokens, prompt_tokens))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(slots=True)
class Meter:
    """Collects what a request did; ``finish`` writes its usage event exactly once."""

    clock: Clock
    sink: UsageSink
    principal: Principal
    request_id: str
    endpoint: str
    model: str = ""
    stream: bool = False
    started_monotonic: float = 0.0
    first_token_monotonic: float | None = None
    tokens: TokenCounts = field(default_factory=TokenCounts)
    content_events: int = 0
    finished: bool = False
    ticket: Settlement | None = None
    service_tier: str = "default"
    app_id: str | None = None  # the App a response ran for
    # The most tokens the request can use (None: no bound known): what a replica reports past
    # them is not billed.
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    _durable: Awaitable[None] | None = None

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def key_id(self) -> str:
        return self.principal.key_id

    def __post_init__(self) -> None:
        self.started_monotonic = self.clock.monotonic()

    @property
    def prompt_tokens(self) -> int:
        return self.tokens.prompt_tokens

    def cut_off(self, counts: TokenCounts | None) -> None:
        """A stream that ended early: the replica's own count of what it did, or without one
        (the replica is gone), the prompt it acknowledged and a token per content event."""
        if counts is not None:
            self.tokens = counts
        else:
            self.tokens.completion_tokens = max(self.tokens.completion_tokens, self.content_events)

    def first_token(self) -> None:
        if self.first_token_monotonic is None:
            self.first_token_monotonic = self.clock.monotonic()

    def finish(
        self,
        status: str,
        http_status: int,
        error_code: str | None = None,
    ) -> None:
        if self.finished:
            return
        self.finished = True
        self.tokens = self.tokens.bounded(self.max_prompt_tokens, self.max_completion_tokens)
        now = self.clock.monotonic()
        created_at = self.clock.utcnow()
        cost = self._cost(status, created_at)
        ttft = (
            self.first_token_monotonic - self.started_monotonic
            if self.first_token_monotonic is not None
            else None
        )
        self._durable = self.sink.record(
            UsageEvent(
                request_id=self.request_id,
                tenant_id=self.principal.tenant_id,
                key_id=self.principal.key_id,
                model=self.model,
                endpoint=self.endpoint,
                stream=self.stream,
                prompt_tokens=self.tokens.prompt_tokens,
                cached_tokens=self.tokens.cached_tokens,
                completion_tokens=self.tokens.completion_tokens,
                ttft_seconds=ttft,
                duration_seconds=now - self.started_monotonic,
                status=status,
                http_status=http_status,
                error_code=error_code,
                created_at=created_at,
                cost_micros=cost,
                service_tier=self.service_tier,
                app_id=self.app_id,
            )
        )
        if self.ticket is not None:
            self.ticket.settle(cost, self.tokens.prompt_tokens + self.tokens.completion_tokens)

    async def durable(self) -> None:
        """Returns once the finished request's usage event is on disk."""
        if self._durable is not None:
            await self._durable

    def _cost(self, status: str, at: datetime) -> int:
        """Answered requests, and failed ones that made tokens, are billed; refusals are not."""
        tokens = self.tokens
        if self.ticket is None or (
            status != "ok" and not (tokens.prompt_tokens or tokens.completion_tokens)
        ):
            return 0
        usage = TokenUsage.clamped(
            tokens.prompt_tokens, tokens.cached_tokens, tokens.completion_tokens
        )
        return self.ticket.cost_micros(self.model, usage, at)

    def finish_error(self, error: TokenmillError) -> None:
        """A refused or failed request: recorded, with no tokens billed unless some were made."""
        self.finish("error", error.status, error.code)
