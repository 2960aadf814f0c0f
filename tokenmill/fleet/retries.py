"""When to try again after a deployment's replica failed to come up, and when it is failing.

A replica that dies, times out or cannot be launched is a failure; failures count up until a
replica of the deployment becomes ready. The first few are retried quickly (a passing fault);
once ``failing_after_failures`` happen in a row the deployment is *failing*: the gateway
refuses its requests at once with the reason, and retries go on at a slower pace, so a host
that gets fixed recovers without anyone restarting the platform.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryDecision:
    wait_seconds: float
    failing: bool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff_seconds: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    failing_after_failures: int = 3
    failing_backoff_seconds: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0)

    def __post_init__(self) -> None:
        if not self.backoff_seconds or not self.failing_backoff_seconds:
            raise ValueError("back-off lists need at least one delay")
        if self.failing_after_failures < 1:
            raise ValueError("failing_after_failures is at least 1")

    def after(self, failures: int) -> RetryDecision:
        """What follows the ``failures``-th failure in a row (counting from 1)."""
        if failures < self.failing_after_failures:
            delays = self.backoff_seconds
            return RetryDecision(delays[min(failures - 1, len(delays) - 1)], failing=False)
        delays = self.failing_backoff_seconds
        nth = min(failures - self.failing_after_failures, len(delays) - 1)
        return RetryDecision(delays[nth], failing=True)
