"""Reciprocal rank fusion of ranked result lists (keyword and dense) into one scored ranking.

An item ranked ``r`` (from 1) in a list of weight ``w`` earns ``w / (k + r)``; its fused score is
the sum over the lists that hold it, divided by the most any item can earn (first in every list),
so scores lie in 0..1 and mean the same from one query to the next: ``score_threshold`` compares
with them. Sums are exact (``math.fsum``) and ties go to the smaller id, so the result does not
depend on the order the lists are given in.

``saturate`` maps an unbounded relevance score (BM25, ``ts_rank``) onto 0..1 without reference
to the other results, for a keyword-only search that still honours ``score_threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_K = 60


@dataclass(frozen=True, slots=True)
class Ranking:
    """One ranked list of item ids, best first, and how much it counts."""

    ids: Sequence[str]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Fused:
    id: str
    score: float  # 0..1
    ranks: tuple[int | None, ...]  # the item's rank (from 1) in each input list, None if absent


def reciprocal_rank_fusion(rankings: Sequence[Ranking], *, k: int = DEFAULT_K) -> list[Fused]:
    """The items of every list, best first, with their normalised fused scores.

    An id repeated within one list counts at its best (first) rank only.
    """
    if k < 0:
        raise ValueError(f"k must be at least 0, not {k}")
    for ranking in rankings:
        if not math.isfinite(ranking.weight) or ranking.weight < 0:
            raise ValueError(
                f"a ranking's weight must be finite and not negative: {ranking.weight}"
            )
    best = math.fsum(r.weight / (k + 1) for r in rankings)
    ranks: dict[str, list[int | None]] = {}
    for position, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking.ids, start=1):
            slots = ranks.setdefault(item, [None] * len(rankings))
            if slots[position] is None:
                slots[position] = rank
    fused = []
    for item, item_ranks in ranks.items():
        earned = math.fsum(
            r.weight / (k + rank)
            for r, rank in zip(rankings, item_ranks, strict=True)
            if rank is not None
        )
        score = min(1.0, earned / best) if best > 0 else 0.0
        fused.append(Fused(item, score, tuple(item_ranks)))
    fused.sort(key=lambda f: (-f.score, f.id))
    return fused


def saturate(score: float, half: float) -> float:
    """``score / (score + half)``: 0 for 0, one half at ``half``, towards 1 above; monotone.

    Give SQLite FTS5's ``bm25()`` negated (it reports better matches as more negative).
    """
    if half <= 0:
        raise ValueError(f"half must be positive, not {half}")
    if score <= 0:
        return 0.0
    return score / (score + half)
