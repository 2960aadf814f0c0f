"""Rate limits: the values and the pure decision, shared by both counter implementations.

Each scope (a key, a tenant, a tenant's use of one model) may limit requests per minute,
tokens per minute (prompt + completion) and requests in flight. Minutes are sliding
windows: a request is admitted when, counting it, no scope has more than its limit within
the last ``WINDOW_SECONDS``. That is exact (a burst never gets more than the limit), and
tells a refused client exactly when to retry.

Pure: time is passed in (``now``, seconds on a clock shared by every gateway).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
CONCURRENCY_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """One scope's limits; ``None`` is unlimited. ``scope`` names its counters."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None


@dataclass(frozen=True, slots=True)
class RateRequest:
    request_id: str
    scopes: tuple[ScopeLimits, ...]
    tokens: int  # reserved until corrected: the most prompt + completion can be
    now: float


def _no_entries() -> Sequence[tuple[float, int]]:
    return ()


@dataclass(frozen=True, slots=True)
class WindowState:
    """A scope's counters at ``now`` (what left the window already gone): running totals,
    so a check costs the same however busy the window is."""

    requests: int
    oldest_request_at: float | None
    tokens_used: int
    oldest_tokens_at: float | None
    in_flight: int
    # (time, tokens) oldest first; read only to say when a refused request may retry.
    token_entries: Callable[[], Sequence[tuple[float, int]]] = _no_entries


@dataclass(frozen=True, slots=True)
class Quota:
    """What the ``x-ratelimit-*`` headers report for one dimension."""

    limit: int
    remaining: int
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class RateDecision:
    admitted: bool
    retry_after_seconds: float = 0.0
    message: str = ""
    requests: Quota | None = None
    tokens: Quota | None = None


def _reset(oldest: float | None, now: float) -> float:
    return 0.0 if oldest is None else max(oldest + WINDOW_SECONDS - now, 0.0)


def _tokens_free_at(entries: Sequence[tuple[float, int]], need: int, limit: int) -> float | None:
    """When enough old entries have left the window for ``need`` more tokens to fit."""
    used = sum(tokens for _, tokens in entries)
    for at, tokens in entries:
        used -= tokens
        if used + need <= limit:
            return at + WINDOW_SECONDS
    return None


def check_scope(limits: ScopeLimits, state: WindowState, tokens: int, now: float) -> RateDecision:
    """Admit one more request of ``tokens`` in this scope, or say when to retry."""
    requests = tokens_quota = None
    if limits.rpm is not None:
        count, oldest = state.requests, state.oldest_request_at
        if count + 1 > limits.rpm:
            return RateDecision(
                False,
                _reset(oldest, now),
                f"Rate limit reached for requests per minute ({limits.rpm}).",
            )
        requests = Quota(limits.rpm, limits.rpm - count - 1, _reset(oldest, now))
    if limits.tpm is not None:
        used = state.tokens_used
        if tokens > limits.tpm:
            return RateDecision(
                False,
                WINDOW_SECONDS,
                f"Request too large for tokens per minute ({limits.tpm}): it may use up to "
                f"{tokens} tokens. Lower max_tokens.",
            )
        if used + tokens > limits.tpm:
            free_at = _tokens_free_at(state.token_entries(), tokens, limits.tpm)
            return RateDecision(
                False,
                max((free_at or now + WINDOW_SECONDS) - now, 0.0),
                f"Rate limit reached for tokens per minute ({limits.tpm}).",
            )
        oldest = state.oldest_tokens_at if state.oldest_tokens_at is not None else now
        tokens_quota = Quota(limits.tpm, limits.tpm - used - tokens, _reset(oldest, now))
    if limits.concurrency is not None and state.in_flight + 1 > limits.concurrency:
        return RateDecision(
            False,
            CONCURRENCY_RETRY_SECONDS,
            f"Too many requests in flight ({limits.concurrency} at most).",
        )
    return RateDecision(True, requests=requests, tokens=tokens_quota)


def tightest(decisions: Sequence[RateDecision]) -> RateDecision:
    """All scopes admitted: report the scope with the fewest remaining of each dimension."""
    requests = [d.requests for d in decisions if d.requests is not None]
    tokens = [d.tokens for d in decisions if d.tokens is not None]
    return RateDecision(
        True,
        requests=min(requests, key=lambda q: q.remaining, default=None),
        tokens=min(tokens, key=lambda q: q.remaining, default=None),
    )


def format_reset(seconds: float) -> str:
    """OpenAI's duration style: ``"1s"``, ``"6m0s"``, ``"0.5s"``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def rate_headers(decision: RateDecision) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, quota in (("requests", decision.requests), ("tokens", decision.tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(max(quota.remaining, 0))
            headers[f"x-ratelimit-reset-{name}"] = format_reset(quota.reset_seconds)
    return headers


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(math.ceil(seconds), 1))}
