"""Search request options: defaults, and each bad value refused naming its param."""

from __future__ import annotations

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.filters import Comparison
from tokenmill.knowledge.search import SearchOptions, parse_search


def test_defaults_and_a_full_request() -> None:
    assert parse_search({"query": "cats"}) == SearchOptions(("cats",))
    options = parse_search(
        {
            "query": ["a", "b"],
            "filters": {"type": "eq", "key": "k", "value": 1},
            "max_num_results": 50,
            "ranking_options": {"ranker": "none", "score_threshold": 1},
            "rewrite_query": True,
        }
    )
    assert options == SearchOptions(("a", "b"), Comparison("eq", "k", 1), 50, "none", 1.0, True)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"query": ["a", 3]}, "query"),
        ({"query": "a", "max_num_results": 0}, "max_num_results"),
        ({"query": "a", "max_num_results": 51}, "max_num_results"),
        ({"query": "a", "max_num_results": True}, "max_num_results"),
        ({"query": "a", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        (
            {"query": "a", "ranking_options": {"score_threshold": 1.5}},
            "ranking_options.score_threshold",
        ),
        (
            {"query": "a", "ranking_options": {"score_threshold": "0.5"}},
            "ranking_options.score_threshold",
        ),
        ({"query": "a", "ranking_options": {"boost": 1}}, "ranking_options.boost"),
        ({"query": "a", "ranking_options": 1}, "ranking_options"),
        ({"query": "a", "rewrite_query": "yes"}, "rewrite_query"),
        ({"query": "a", "filters": {"type": "eq"}}, "filters.key"),
        ({"query": "a", "top_k": 3}, "top_k"),
        (
            {"query": "a", "ranking_options": {"hybrid_search": {"text_weight": -1}}},
            "ranking_options.hybrid_search.text_weight",
        ),
        (
            {
                "query": "a",
                "ranking_options": {"hybrid_search": {"text_weight": 0, "embedding_weight": 0}},
            },
            "ranking_options.hybrid_search",
        ),
        (
            {"query": "a", "ranking_options": {"hybrid_search": {"bm25": 1}}},
            "ranking_options.hybrid_search",
        ),
    ],
)
def test_bad_requests_name_the_param(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_search(body)
    assert caught.value.param == param


def test_hybrid_search_weights_default_to_one_each() -> None:
    assert (
        parse_search({"query": "a"}).embedding_weight,
        parse_search({"query": "a"}).text_weight,
    ) == (1.0, 1.0)
    weighted = parse_search(
        {
            "query": "a",
            "ranking_options": {"hybrid_search": {"embedding_weight": 0.7, "text_weight": 0.3}},
        }
    )
    assert (weighted.embedding_weight, weighted.text_weight) == (0.7, 0.3)
