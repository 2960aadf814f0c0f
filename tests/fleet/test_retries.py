"""The retry policy after failed replica starts (pure)."""

from __future__ import annotations

import pytest

from tokenmill.fleet.retries import RetryDecision, RetryPolicy


def test_quick_retries_then_failing_with_slower_ones_capped_at_the_last_delay() -> None:
    policy = RetryPolicy(
        backoff_seconds=(1, 2), failing_after_failures=4, failing_backoff_seconds=(30, 60)
    )
    decisions = [policy.after(n) for n in range(1, 8)]
    assert decisions == [
        RetryDecision(1, failing=False),
        RetryDecision(2, failing=False),
        RetryDecision(2, failing=False),
        RetryDecision(30, failing=True),
        RetryDecision(60, failing=True),
        RetryDecision(60, failing=True),
        RetryDecision(60, failing=True),
    ]


def test_failing_after_one_failure_is_allowed() -> None:
    assert RetryPolicy(failing_after_failures=1).after(1) == RetryDecision(30, failing=True)


@pytest.mark.parametrize(
    "terms",
    [{"backoff_seconds": ()}, {"failing_backoff_seconds": ()}, {"failing_after_failures": 0}],
)
def test_bad_terms_are_refused(terms: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**terms)  # type: ignore[arg-type]
