"""Rate-limit counters for one gateway process: sliding windows in memory."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from tokenmill.gateway.limits.policy import (
    WINDOW_SECONDS,
    RateDecision,
    RateRequest,
    WindowState,
    check_scope,
    tightest,
)


@dataclass(slots=True)
class _Window:
    requests: deque[tuple[float, str]] = field(default_factory=deque)
    tokens: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    tokens_used: int = 0
    in_flight: set[str] = field(default_factory=set)

    def prune(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        while self.requests and self.requests[0][0] <= horizon:
            self.requests.popleft()
        while self.tokens:
            request_id, (at, size) = next(iter(self.tokens.items()))
            if at > horizon:
                break
            del self.tokens[request_id]
            self.tokens_used -= size

    def state(self) -> WindowState:
        first_tokens = next(iter(self.tokens.values()), None)
        return WindowState(
            len(self.requests),
            self.requests[0][0] if self.requests else None,
            self.tokens_used,
            first_tokens[0] if first_tokens is not None else None,
            len(self.in_flight),
            lambda: list(self.tokens.values()),
        )

    def set_tokens(self, request_id: str, size: int | None) -> None:
        """Corrects (or, with ``None``, removes) a request's tokens, if still in the window."""
        found = self.tokens.get(request_id)
        if found is None:
            return
        self.tokens_used -= found[1]
        if size is None:
            del self.tokens[request_id]
        else:
            self.tokens[request_id] = (found[0], size)
            self.tokens_used += size


class LocalRateCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    async def acquire(self, request: RateRequest) -> RateDecision:
        with self._lock:
            windows = [self._window(limits.scope) for limits in request.scopes]
            decisions = []
            for limits, window in zip(request.scopes, windows, strict=True):
                window.prune(request.now)
                decision = check_scope(limits, window.state(), request.tokens, request.now)
                if not decision.admitted:
                    return decision
                decisions.append(decision)
            for window in windows:
                window.requests.append((request.now, request.request_id))
                window.tokens[request.request_id] = (request.now, request.tokens)
                window.tokens_used += request.tokens
                window.in_flight.add(request.request_id)
            return tightest(decisions)

    async def finish(self, request: RateRequest, actual_tokens: int | None) -> None:
        with self._lock:
            for limits in request.scopes:
                window = self._window(limits.scope)
                window.in_flight.discard(request.request_id)
                window.set_tokens(request.request_id, actual_tokens)
                if actual_tokens is None:
                    with contextlib.suppress(ValueError):
                        window.requests.remove((request.now, request.request_id))

    async def close(self) -> None:
        pass

    def _window(self, scope: str) -> _Window:
        window = self._windows.get(scope)
        if window is None:
            window = self._windows[scope] = _Window()
        return window
