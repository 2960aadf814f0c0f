from __future__ import annotations

from tokenmill.gateway.limits.policy import (
    Quota,
    RateDecision,
    ScopeLimits,
    WindowState,
    check_scope,
    format_reset,
    rate_headers,
    retry_after_header,
    tightest,
)


def state(
    times: tuple[float, ...] = (), tokens: tuple[tuple[float, int], ...] = (), in_flight: int = 0
) -> WindowState:
    return WindowState(
        len(times),
        times[0] if times else None,
        sum(size for _, size in tokens),
        tokens[0][0] if tokens else None,
        in_flight,
        lambda: tokens,
    )


def test_requests_per_minute_with_the_time_to_retry() -> None:
    limits = ScopeLimits("k", rpm=2)
    admitted = check_scope(limits, state((100.0,)), 0, 110.0)
    assert admitted.admitted and admitted.requests == Quota(2, 0, 50.0)
    refused = check_scope(limits, state((100.0, 105.0)), 0, 110.0)
    assert not refused.admitted and refused.retry_after_seconds == 50.0


def test_tokens_per_minute_wait_for_enough_old_tokens_to_leave() -> None:
    limits = ScopeLimits("k", tpm=100)
    entries = ((10.0, 30), (20.0, 50))
    assert check_scope(limits, state(tokens=entries), 20, 30.0).admitted
    refused = check_scope(limits, state(tokens=entries), 40, 30.0)
    assert not refused.admitted and refused.retry_after_seconds == 40.0  # (10 + 60) - 30
    too_big = check_scope(limits, state(), 101, 30.0)
    assert not too_big.admitted and "too large" in too_big.message


def test_concurrency() -> None:
    limits = ScopeLimits("k", concurrency=1)
    assert check_scope(limits, state(in_flight=0), 0, 0.0).admitted
    assert not check_scope(limits, state(in_flight=1), 0, 0.0).admitted


def test_headers_report_the_tightest_scope() -> None:
    decision = tightest(
        [
            RateDecision(True, requests=Quota(60, 10, 5.0), tokens=Quota(1000, 900, 1.0)),
            RateDecision(True, requests=Quota(600, 5, 0.5)),
        ]
    )
    assert rate_headers(decision) == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "5",
        "x-ratelimit-reset-requests": "0.5s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "1s",
    }
    assert format_reset(360) == "6m0s"
    assert retry_after_header(0.2) == {"Retry-After": "1"}
