"""The interface both rate-limit counter implementations keep (in-process and Redis)."""

from __future__ import annotations

from typing import Protocol

from tokenmill.gateway.limits.policy import RateDecision, RateRequest


class RateCounters(Protocol):
    async def acquire(self, request: RateRequest) -> RateDecision:
        """Checks every scope and, only if all admit, counts the request in all of them."""
        ...

    async def finish(self, request: RateRequest, actual_tokens: int | None) -> None:
        """Frees the request's concurrency slot and corrects its tokens to ``actual_tokens``;
        ``None`` takes the request back entirely (it was refused after all)."""
        ...

    async def close(self) -> None: ...
