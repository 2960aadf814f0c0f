"""The smallest fleet that meets the SLO target, by bisection over the accelerator count.

SLO attainment is assumed to grow with the fleet (more accelerators never hurt a policy that
places onto the fullest one that fits); the search tests that assumption on the sizes it
visits and reports any violation instead of hiding it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

SLO_TARGET = 0.99


@dataclass(slots=True)
class SearchResult:
    smallest_accelerators: int | None  # None: even the largest size tried misses the target
    attainment_by_size: dict[int, float] = field(default_factory=dict)
    monotone: bool = True


def smallest_fleet(
    attainment: Callable[[int], float],
    *,
    start: int,
    low: int = 1,
    most: int = 4096,
    target: float = SLO_TARGET,
) -> SearchResult:
    """Bisection for the least ``n`` in [low, most] with ``attainment(n) >= target``.

    ``start`` is a first guess for an upper bound; it doubles until the target is met.
    """
    if not 1 <= low <= start <= most:
        raise ValueError("need 1 <= low <= start <= most")
    result = SearchResult(None)

    def meets(n: int) -> bool:
        if n not in result.attainment_by_size:
            result.attainment_by_size[n] = attainment(n)
        return result.attainment_by_size[n] >= target

    high = start
    while not meets(high):
        if high >= most:
            return _check(result)
        low = high + 1
        high = min(most, high * 2)
    while low < high:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle + 1
    result.smallest_accelerators = high
    return _check(result)


def _check(result: SearchResult) -> SearchResult:
    sizes = sorted(result.attainment_by_size)
    values = [result.attainment_by_size[n] for n in sizes]
    result.monotone = all(a <= b + 1e-9 for a, b in itertools.pairwise(values))
    return result
