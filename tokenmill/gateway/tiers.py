"""Which service tier serves a request: the one asked for (or the key's default), if allowed,
then held to its tier's time-to-first-token target before it is sent.

A priority request the chosen replica cannot answer within the priority target is served in
the default tier instead (and priced so; OpenAI downgrades the same way); a default or flex
request that would miss its target is refused with 429 and a ``Retry-After`` rather than left
to time out. Without a prediction (a replica that has not answered yet) nothing is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tokenmill.control.keys import Principal
from tokenmill.errors import PermissionDenied, RateLimited
from tokenmill.protocol.tiers import AUTO, ServiceTier

_FALLBACK_ORDER = (ServiceTier.DEFAULT, ServiceTier.FLEX, ServiceTier.PRIORITY)


def choose_tier(requested: str | None, principal: Principal) -> ServiceTier:
    """The tier asked for, or for ``auto`` (or nothing) the key's default within what it may
    use. Raises ``PermissionDenied`` for a tier the key or its tenant may not use."""
    allowed = principal.service_tiers
    if requested is not None and requested != AUTO:
        if requested not in allowed:
            raise PermissionDenied(
                f"This key may not use the {requested} service tier; it may use "
                f"{', '.join(t for t in ServiceTier if t in allowed)}.",
                param="service_tier",
                code="service_tier_not_allowed",
            )
        return ServiceTier(requested)
    preferred = principal.service_tier or ServiceTier.DEFAULT
    if preferred in allowed:
        return ServiceTier(preferred)
    return next(tier for tier in _FALLBACK_ORDER if tier in allowed)


def hold_to_target(
    tier: ServiceTier,
    predict: Mapping[ServiceTier, float | None],
    targets: Mapping[str, float],
    allowed: frozenset[str],
    model: str,
) -> ServiceTier:
    """The tier that serves the request given each tier's predicted time to first token;
    raises ``RateLimited`` when none it may fall to can meet its target."""
    predicted = predict.get(tier)
    if predicted is None or predicted <= targets[tier]:
        return tier
    if tier is ServiceTier.PRIORITY and ServiceTier.DEFAULT in allowed:
        return hold_to_target(ServiceTier.DEFAULT, predict, targets, allowed, model)
    retry_after = max(1, math.ceil(predicted - targets[tier]))
    raise RateLimited(
        f"'{model}' would answer this {tier} request's first token in about {predicted:.0f} s, "
        f"past the {tier} tier's {targets[tier]:g} s target; try again in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
        code="service_tier_overloaded",
    )
