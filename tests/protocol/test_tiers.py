from __future__ import annotations

from typing import Any

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tenancy import Priority
from tokenmill.protocol.tiers import (
    ServiceTier,
    allowed_within,
    parse_service_tier,
    validate_tier_terms,
)


@pytest.mark.parametrize("value", ["auto", "default", "flex", "priority", None])
def test_openais_service_tiers_are_accepted(value: str | None) -> None:
    body = {} if value is None else {"service_tier": value}
    assert parse_service_tier(body) == value


@pytest.mark.parametrize("value", ["scale", "", "PRIORITY", 1, ["flex"]])
def test_other_service_tiers_are_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_service_tier({"service_tier": value})
    assert refused.value.param == "service_tier"


def test_tiers_map_onto_the_engines_queue_classes() -> None:
    assert [t.priority for t in ServiceTier] == [Priority.PRIORITY, Priority.DEFAULT, Priority.FLEX]
    assert all(ServiceTier.of(t.priority) is t for t in ServiceTier)


def test_a_keys_tiers_are_within_its_tenants() -> None:
    assert allowed_within(None, None) == {"priority", "default", "flex"}
    assert allowed_within(["default", "flex"], None) == {"default", "flex"}
    assert allowed_within(["default", "flex"], ["priority", "flex"]) == {"flex"}


def test_tier_terms_are_validated_and_put_in_order() -> None:
    terms = {"service_tier": "flex", "service_tiers": ["flex", "default"], "rpm_limit": 3}
    assert validate_tier_terms(terms) == {
        "service_tier": "flex",
        "service_tiers": ["default", "flex"],
    }
    assert validate_tier_terms({"service_tier": None, "service_tiers": None}) == {
        "service_tier": None,
        "service_tiers": None,
    }
    for bad in ({"service_tier": "auto"}, {"service_tiers": []}, {"service_tiers": ["gold"]}):
        with pytest.raises(InvalidRequest):
            validate_tier_terms(bad)
