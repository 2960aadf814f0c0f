from __future__ import annotations

import dataclasses

import pytest

from tests.gateway.support import principal
from tokenmill.control.keys import Principal
from tokenmill.errors import PermissionDenied, RateLimited
from tokenmill.gateway.tiers import choose_tier, hold_to_target
from tokenmill.protocol.tiers import DEFAULT_TTFT_TARGETS, ServiceTier

EVERY = frozenset(ServiceTier)
TARGETS = {"priority": 2.0, "default": 10.0, "flex": 60.0}


def _key(default: str | None = None, allowed: frozenset[str] = EVERY) -> Principal:
    return dataclasses.replace(principal(), service_tier=default, service_tiers=allowed)


def test_auto_or_nothing_is_the_keys_default_or_the_platforms() -> None:
    assert choose_tier(None, principal()) is ServiceTier.DEFAULT
    assert choose_tier("auto", _key("priority")) is ServiceTier.PRIORITY
    assert choose_tier("flex", _key("priority")) is ServiceTier.FLEX


def test_a_default_the_key_may_not_use_falls_to_one_it_may() -> None:
    only_flex = _key("priority", frozenset({"flex"}))
    assert choose_tier("auto", only_flex) is ServiceTier.FLEX


def test_a_tier_the_key_may_not_use_is_refused_by_name() -> None:
    with pytest.raises(PermissionDenied) as refused:
        choose_tier("priority", _key(allowed=frozenset({"default", "flex"})))
    assert refused.value.code == "service_tier_not_allowed"
    assert "default, flex" in str(refused.value)


def _hold(
    tier: ServiceTier, predicted: dict[str, float | None], allowed: frozenset[str] = EVERY
) -> ServiceTier:
    return hold_to_target(
        tier, {ServiceTier(k): v for k, v in predicted.items()}, TARGETS, allowed, "m"
    )


def test_a_request_within_its_target_or_without_a_prediction_keeps_its_tier() -> None:
    assert _hold(ServiceTier.PRIORITY, {"priority": 1.9}) is ServiceTier.PRIORITY
    assert _hold(ServiceTier.FLEX, {"flex": None}) is ServiceTier.FLEX


def test_priority_that_would_miss_its_target_is_served_as_default() -> None:
    predicted = {"priority": 3.0, "default": 8.0}
    assert _hold(ServiceTier.PRIORITY, predicted) is ServiceTier.DEFAULT
    with pytest.raises(RateLimited):  # no default tier to fall to
        _hold(ServiceTier.PRIORITY, predicted, frozenset({"priority"}))


@pytest.mark.parametrize(
    ("tier", "predicted", "retry"), [("default", 12.2, "3"), ("flex", 61.0, "1")]
)
def test_default_or_flex_that_would_miss_its_target_is_refused_with_retry_after(
    tier: str, predicted: float, retry: str
) -> None:
    with pytest.raises(RateLimited) as refused:
        _hold(ServiceTier(tier), {tier: predicted})
    assert refused.value.code == "service_tier_overloaded"
    assert refused.value.headers == {"Retry-After": retry}


def test_priority_falls_to_default_and_is_refused_there_if_default_would_miss_too() -> None:
    with pytest.raises(RateLimited, match="default tier"):
        _hold(ServiceTier.PRIORITY, {"priority": 30.0, "default": 40.0})


def test_the_default_targets_are_ordered_by_urgency() -> None:
    assert DEFAULT_TTFT_TARGETS["priority"] < DEFAULT_TTFT_TARGETS["default"]
    assert DEFAULT_TTFT_TARGETS["default"] < DEFAULT_TTFT_TARGETS["flex"]
