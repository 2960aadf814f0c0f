"""Failed authentications counted per address and per key prefix over a sliding minute."""

from __future__ import annotations

from tokenmill.clock import ManualClock
from tokenmill.control.auth_throttle import PREFIX_CHARS, AuthThrottle


def fail(throttle: AuthThrottle, times: int, address: str | None, secret: str | None) -> None:
    for _ in range(times):
        throttle.failed(address, secret)


def test_an_address_is_refused_at_its_limit_and_told_when_to_come_back() -> None:
    clock = ManualClock(start=30.0)  # half a minute into a window
    throttle = AuthThrottle(clock, limit=5)
    fail(throttle, 4, "10.0.0.1", "tm-wrong-1")
    assert throttle.refusal("10.0.0.1", "tm-other-key") is None
    throttle.failed("10.0.0.1", "tm-wrong-2")
    refusal = throttle.refusal("10.0.0.1", "tm-other-key")
    assert refusal is not None and refusal.status == 429
    assert refusal.code == "too_many_auth_failures"
    assert refusal.body()["error"]["type"] == "rate_limit_error"
    assert int(refusal.headers["retry-after"]) == 31  # the rest of this minute, and a second
    assert throttle.refusal("10.0.0.2", "tm-another") is None  # another client is not touched


def test_the_previous_minute_weighs_by_what_is_left_of_it_in_the_window() -> None:
    clock = ManualClock(start=0.0)
    throttle = AuthThrottle(clock, limit=10)
    fail(throttle, 10, "10.0.0.1", None)
    clock.advance(60.0)  # a new minute: all ten still inside the sliding window
    refusal = throttle.refusal("10.0.0.1", None)
    assert refusal is not None
    assert int(refusal.headers["retry-after"]) <= 7  # 10 x (1 - t) < 10 a moment later
    clock.advance(15.0)  # 10 x 0.75 = 7.5 < 10
    assert throttle.refusal("10.0.0.1", None) is None
    fail(throttle, 3, "10.0.0.1", None)  # 3 + 7.5 >= 10
    assert throttle.refusal("10.0.0.1", None) is not None
    clock.advance(120.0)  # two minutes on: forgotten
    assert throttle.refusal("10.0.0.1", None) is None


def test_a_key_prefix_is_refused_across_addresses() -> None:
    throttle = AuthThrottle(ManualClock(), limit=3)
    stem = "tm-AbCdEfGhI"
    assert len(stem) == PREFIX_CHARS
    for n in range(3):
        throttle.failed(f"10.0.1.{n}", f"{stem}guess{n}")
    assert throttle.refusal("10.9.9.9", f"{stem}another") is not None  # same prefix, new address
    assert throttle.refusal("10.9.9.9", "tm-ZyXwVuTsRqguess") is None


def test_no_limit_counts_nothing() -> None:
    throttle = AuthThrottle(ManualClock(), limit=0)
    fail(throttle, 1000, "10.0.0.1", "tm-x")
    assert not throttle.enabled
    assert throttle.refusal("10.0.0.1", "tm-x") is None


def test_the_oldest_clients_are_forgotten_past_the_bound() -> None:
    throttle = AuthThrottle(ManualClock(), limit=1, max_tracked=4)
    for n in range(5):
        throttle.failed(f"10.0.0.{n}", None)
    assert throttle.refusal("10.0.0.0", None) is None  # dropped to keep the table bounded
    assert all(throttle.refusal(f"10.0.0.{n}", None) is not None for n in range(1, 5))
