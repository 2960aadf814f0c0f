"""Service tiers, OpenAI's ``service_tier``: which queue class a request is served in and at
which price. ``auto`` is not a tier: it asks for the key's (or tenant's) default."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tenancy import Priority

AUTO = "auto"
# Seconds to first token each tier is held to, unless the operator sets others.
DEFAULT_TTFT_TARGETS = {"priority": 10.0, "default": 60.0, "flex": 300.0}


class ServiceTier(StrEnum):
    PRIORITY = "priority"
    DEFAULT = "default"
    FLEX = "flex"

    @property
    def priority(self) -> Priority:
        return Priority[self.name]

    @classmethod
    def of(cls, priority: Priority) -> ServiceTier:
        return cls[priority.name]


TIER_NAMES = tuple(tier.value for tier in ServiceTier)


def parse_service_tier(body: dict[str, Any]) -> str | None:
    """The request's ``service_tier``: a tier name, ``auto``, or None when absent."""
    value = body.get("service_tier")
    if value is None:
        return None
    if value != AUTO and value not in TIER_NAMES:
        raise InvalidRequest(
            f"'service_tier' must be one of {AUTO}, {', '.join(TIER_NAMES)}; got {value!r}.",
            param="service_tier",
        )
    return str(value)


def validate_tier(value: Any, param: str) -> str | None:
    """A default tier setting: a tier name, or None (the platform's default)."""
    if value is not None and value not in TIER_NAMES:
        raise InvalidRequest(f"{param} is one of {', '.join(TIER_NAMES)}, or null.", param=param)
    return None if value is None else str(value)


def validate_tiers(value: Any, param: str) -> list[str] | None:
    """An allowed-tiers setting: a non-empty list of tier names, or None (every tier)."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(v, str) or v not in TIER_NAMES for v in value)
    ):
        raise InvalidRequest(
            f"{param} is a non-empty list of {', '.join(TIER_NAMES)}, or null (all of them).",
            param=param,
        )
    return [tier for tier in TIER_NAMES if tier in value]


def allowed_within(
    tenant_tiers: Iterable[str] | None, key_tiers: Iterable[str] | None
) -> frozenset[str]:
    """The tiers a key may use: its own list within its tenant's (None is every tier)."""
    allowed = frozenset(TIER_NAMES)
    for restriction in (tenant_tiers, key_tiers):
        if restriction is not None:
            allowed &= frozenset(restriction)
    return allowed


TIER_TERMS = ("service_tier", "service_tiers")


def validate_tier_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """The tier settings among a tenant's or key's terms, validated (others are left out)."""
    found: dict[str, Any] = {}
    if "service_tier" in terms:
        found["service_tier"] = validate_tier(terms["service_tier"], "service_tier")
    if "service_tiers" in terms:
        found["service_tiers"] = validate_tiers(terms["service_tiers"], "service_tiers")
    return found
