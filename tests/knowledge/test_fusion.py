"""Reciprocal rank fusion: scores, normalisation, ties, and the properties a ranking needs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmill.knowledge.fusion import Fused, Ranking, reciprocal_rank_fusion, saturate


def test_scores_and_normalisation() -> None:
    fused = reciprocal_rank_fusion([Ranking(["a", "b"]), Ranking(["b", "c"])])
    assert [f.id for f in fused] == ["b", "a", "c"]
    top = 2 / 61
    assert fused[0] == Fused("b", pytest.approx((1 / 62 + 1 / 61) / top), (2, 1))  # type: ignore[arg-type]
    assert fused[1].score == pytest.approx((1 / 61) / top)
    assert reciprocal_rank_fusion([Ranking(["x"]), Ranking(["x"])])[0].score == 1.0


def test_ties_go_to_the_smaller_id_and_duplicates_count_once() -> None:
    fused = reciprocal_rank_fusion([Ranking(["b", "a"]), Ranking(["a", "b"])])
    assert [f.id for f in fused] == ["a", "b"]
    fused = reciprocal_rank_fusion([Ranking(["a", "b", "a"])])
    assert [(f.id, f.ranks) for f in fused] == [("a", (1,)), ("b", (2,))]


def test_weights() -> None:
    fused = reciprocal_rank_fusion([Ranking(["a", "b"], 1.0), Ranking(["b", "a"], 3.0)])
    assert [f.id for f in fused] == ["b", "a"]
    assert reciprocal_rank_fusion([Ranking(["a"], 0.0)])[0].score == 0.0
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([Ranking(["a"], -1.0)])
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([Ranking(["a"])], k=-1)


def test_saturate() -> None:
    assert saturate(0.0, 5.0) == 0.0
    assert saturate(-3.0, 5.0) == 0.0
    assert saturate(5.0, 5.0) == 0.5
    assert saturate(1e9, 5.0) < 1.0
    with pytest.raises(ValueError):
        saturate(1.0, 0.0)


ids = st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10)
rankings = st.lists(
    st.builds(Ranking, ids, st.sampled_from([0.5, 1.0, 1.0, 2.0, 0.1])), min_size=1, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(lists=rankings, order=st.randoms(use_true_random=False), k=st.integers(0, 100))
def test_the_order_of_the_lists_does_not_matter(
    lists: list[Ranking], order: random.Random, k: int
) -> None:
    shuffled = list(lists)
    order.shuffle(shuffled)

    def view(fused: list[Fused]) -> list[tuple[str, float]]:
        return [(f.id, f.score) for f in fused]

    assert view(reciprocal_rank_fusion(shuffled, k=k)) == view(reciprocal_rank_fusion(lists, k=k))


@settings(max_examples=300, deadline=None)
@given(lists=rankings, k=st.integers(0, 100))
def test_fusion_is_monotone_and_normalised(lists: list[Ranking], k: int) -> None:
    fused = reciprocal_rank_fusion(lists, k=k)
    assert all(0.0 <= f.score <= 1.0 for f in fused)
    assert [f.score for f in fused] == sorted((f.score for f in fused), reverse=True)
    by_id = {f.id: f for f in fused}
    for a in fused:
        for b in fused:
            pairs = list(zip(a.ranks, b.ranks, strict=True))
            if all(ra is not None and (rb is None or ra < rb) for ra, rb in pairs if ra or rb):
                assert by_id[a.id].score >= by_id[b.id].score
