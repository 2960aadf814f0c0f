"""Where per-token and per-hour bills cross, as the tenant's volume scales.

Pure. The traffic is scaled, not re-invented, in one of two ways (``SCALINGS``):
- ``arrivals`` (``sped_rows``): the same arrivals, faster or slower. Time runs ``factor``
  times as fast and the sped-up trace repeats to fill the span (slowed down, its first part
  fills it), so its bursts keep their shape at every scale: the same process at another rate.
- ``users`` (``scaled_rows``): more or fewer independent users. Whole copies of the trace
  are overlaid (each moved by whole days and a jitter, so the hours of the day keep their
  shape) and one more copy is thinned for the fraction; many users' bursts smooth each other.
``first_crossing`` searches a volume factor over two bills
given as functions: the serverless one is linear, the dedicated one a step function (a fleet
is a whole number of accelerators), so their first crossing from below is where dedicated
starts to pay (``first_crossing``); ``curve`` gives both bills on a grid of volumes.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tokenmill.advice.trace import SECONDS_PER_DAY
from tokenmill.sim.workload import TraceRow

JITTER_SECONDS = 1800.0
GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
SCALINGS = ("arrivals", "users")


def rows_at(
    rows: Sequence[TraceRow], factor: float, span_seconds: float, scaling: str = "arrivals"
) -> list[TraceRow]:
    """``rows`` at ``factor`` times their rate over the same ``span_seconds``."""
    if scaling == "arrivals":
        return sped_rows(rows, factor, span_seconds)
    if scaling == "users":
        return scaled_rows(rows, factor, span_seconds)
    raise ValueError(f"unknown scaling {scaling!r}; known: {', '.join(SCALINGS)}")


def sped_rows(rows: Sequence[TraceRow], factor: float, span_seconds: float) -> list[TraceRow]:
    """Arrival times divided by ``factor``, the result repeated (or cut) to fill the span."""
    if factor <= 0:
        raise ValueError("a volume factor must be positive")
    if span_seconds <= 0:
        raise ValueError("the span must be positive")
    period = span_seconds / factor
    ordered = sorted(rows, key=lambda row: row.arrival_seconds)
    out: list[TraceRow] = []
    for copy in range(math.ceil(factor)):
        offset = copy * period
        for row in ordered:
            moment = offset + row.arrival_seconds / factor
            if moment >= span_seconds:
                break
            out.append(TraceRow(moment, row.prompt_tokens, row.output_tokens))
    out.sort(key=lambda row: row.arrival_seconds)
    return out


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
    or "below" (dedicated is already cheaper at its low end). ``points``: both bills on the
    grid, for a plot."""

    factor: float | None
    beyond: str | None
    points: list[CurvePoint] = field(default_factory=list)


def curve(
    serverless: Callable[[float], float],
    dedicated: Callable[[float], float],
    grid: Sequence[float] = GRID,
) -> list[CurvePoint]:
    if not grid or any(b <= a for a, b in itertools.pairwise(grid)) or grid[0] <= 0:
        raise ValueError("the grid is increasing positive factors")
    return [CurvePoint(f, serverless(f), dedicated(f)) for f in grid]


def first_crossing(
    slope_micros: float,
    accelerator_micros: float,
    serves: Callable[[int, float], bool],
    *,
    first_fleet: int,
    low: float = GRID[0],
    high: float = GRID[-1],
) -> tuple[float | None, str | None]:
    """The least volume factor in ``[low, high]`` where ``slope_micros * factor`` (the
    serverless bill) reaches the bill of the least fleet that ``serves`` it (``n`` times
    ``accelerator_micros``). ``first_fleet`` is that least fleet at ``low``.

    Bills meet only at ``n * accelerator_micros / slope_micros`` for some fleet size ``n``
    (the dedicated bill is a step function, the other a line), and the first crossing is
    there for the least ``n`` whose fleet serves that volume: any earlier crossing would need
    a smaller fleet serving a smaller volume. So the search is over ``n``, one replay each,
    galloping then bisecting on the assumption that a bigger fleet at the same load per
    accelerator serves at least as well; a scan of volumes could step over a crossing that a
    fleet's next step undoes before the next point.
    """
    if slope_micros <= 0 or accelerator_micros <= 0:
        raise ValueError("both bills must grow: slope and accelerator cost are positive")
    if not 0 < low <= high:
        raise ValueError("need 0 < low <= high")

    def at(n: int) -> float:
        return max(low, n * accelerator_micros / slope_micros)

    last = math.floor(high * slope_micros / accelerator_micros)  # largest n with at(n) <= high
    if first_fleet < 1 or first_fleet > last:
        return None, "above"
    if at(first_fleet) == low:
        return None, "below"  # the fleet that holds the lowest volume already costs no more
    if serves(first_fleet, at(first_fleet)):
        return at(first_fleet), None
    bad, step = first_fleet, 1
    while True:
        good = min(bad + step, last)
        if serves(good, at(good)):
            break
        if good == last:
            return None, "above"
        bad, step = good, step * 2
    while good - bad > 1:
        middle = (good + bad) // 2
        if serves(middle, at(middle)):
            good = middle
        else:
            bad = middle
    return at(good), None
