"""Where per-token and per-hour bills cross, as the tenant's volume scales.

Pure. The traffic is scaled, not re-invented: ``scaled_rows`` overlays whole copies of the
trace (each moved by whole days and a jitter, so the hours of the day keep their shape) and
thins one more copy for the fraction. ``break_even`` searches a volume factor over two bills
given as functions: the serverless one is linear, the dedicated one a step function (a fleet
is a whole number of accelerators), so their first crossing from below is where dedicated
starts to pay.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenmill.sim.workload import TraceRow

SECONDS_PER_DAY = 86400.0
JITTER_SECONDS = 1800.0
GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def scaled_rows(
    rows: Sequence[TraceRow], factor: float, span_seconds: float, seed: int = 0
) -> list[TraceRow]:
    """``rows`` at ``factor`` times their rate over the same ``span_seconds``."""
    if factor <= 0:
        raise ValueError("a volume factor must be positive")
    if span_seconds <= 0:
        raise ValueError("the span must be positive")
    rng = random.Random(seed)
    whole, fraction = int(factor), factor - int(factor)
    out: list[TraceRow] = []
    for copy in range(whole + (1 if fraction > 1e-9 else 0)):
        shift = 0.0 if copy == 0 else _shift(span_seconds, rng)
        keep = fraction if copy == whole else 1.0
        for row in rows:
            if keep < 1.0 and rng.random() >= keep:
                continue
            out.append(
                TraceRow((row.arrival_seconds + shift) % span_seconds, row.prompt_tokens,
                         row.output_tokens)
            )  # fmt: skip
    out.sort(key=lambda row: row.arrival_seconds)
    return out


def _shift(span_seconds: float, rng: random.Random) -> float:
    days = int(span_seconds // SECONDS_PER_DAY)
    if days < 1:
        return rng.uniform(0.0, span_seconds)
    return rng.randrange(days) * SECONDS_PER_DAY + rng.uniform(-JITTER_SECONDS, JITTER_SECONDS)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    factor: float
    serverless_micros: float
    dedicated_micros: float


@dataclass(slots=True)
class BreakEven:
    """``factor``: the volume (times the tenant's own) where dedicated starts to cost no more
    than serverless; None with ``beyond`` "above" (serverless is cheaper throughout the range)
    or "below" (dedicated is already cheaper at its low end)."""

    factor: float | None
    beyond: str | None
    points: list[CurvePoint] = field(default_factory=list)


def break_even(
    serverless: Callable[[float], float],
    dedicated: Callable[[float], float],
    *,
    grid: Sequence[float] = GRID,
    tolerance: float = 0.02,
) -> BreakEven:
    """The least factor on ``grid``'s range where ``serverless >= dedicated``, to within
    ``tolerance`` (relative): every grid point, then a bisection in log space between the
    first paying point and the one before it."""
    if not grid or any(b <= a for a, b in itertools.pairwise(grid)) or grid[0] <= 0:
        raise ValueError("the grid is increasing positive factors")
    points: dict[float, CurvePoint] = {}

    def point(factor: float) -> CurvePoint:
        if factor not in points:
            points[factor] = CurvePoint(factor, serverless(factor), dedicated(factor))
        return points[factor]

    def pays(factor: float) -> bool:
        found = point(factor)
        return found.serverless_micros >= found.dedicated_micros

    result = BreakEven(None, "above")
    paying = [pays(factor) for factor in grid]  # every grid point: the curve is plotted
    if paying[0]:
        result = BreakEven(None, "below")
    elif any(paying):
        index = paying.index(True)
        low, high = grid[index - 1], grid[index]
        while high / low > 1 + tolerance:
            middle = math.sqrt(low * high)
            if pays(middle):
                high = middle
            else:
                low = middle
        result = BreakEven(high, None)
    result.points = [points[f] for f in sorted(points)]
    return result
