"""The options of a vector store search request, parsed and validated as OpenAI's reference.

``POST /v1/vector_stores/{id}/search`` takes ``query`` (a string or a list of strings),
``filters`` (see ``tokenmill.knowledge.filters``), ``max_num_results`` (1 to 50, default 10),
``ranking_options`` (``ranker``: ``auto``, ``default-2024-11-15`` or ``none``; ``score_threshold``
0 to 1, default 0; ``hybrid_search``: ``embedding_weight`` and ``text_weight``, the weights of the
dense and the keyword ranking in the fusion, each at least 0 and not both 0, default 1 and 1; a
zero weight leaves that method out) and ``rewrite_query`` (a boolean; this platform searches
the query as given and reports it unchanged as ``search_query``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.filters import Filter, parse_filters

Ranker = Literal["auto", "default-2024-11-15", "none"]
RANKERS: tuple[Ranker, ...] = ("auto", "default-2024-11-15", "none")
DEFAULT_MAX_RESULTS = 10
MAX_RESULTS = 50
MAX_QUERIES = 16
FIELDS = frozenset({"query", "filters", "max_num_results", "ranking_options", "rewrite_query"})


@dataclass(frozen=True, slots=True)
class SearchOptions:
    queries: tuple[str, ...]
    filters: Filter | None = None
    max_num_results: int = DEFAULT_MAX_RESULTS
    ranker: Ranker = "auto"
    score_threshold: float = 0.0
    rewrite_query: bool = False
    embedding_weight: float = 1.0
    text_weight: float = 1.0


def parse_search(body: Mapping[str, object]) -> SearchOptions:
    """The options of a search request body; raises ``InvalidRequest`` naming the param."""
    extra = sorted(k for k in body if k not in FIELDS)
    if extra:
        raise InvalidRequest(f"Unknown parameter: {extra[0]}.", param=extra[0])
    filters = body.get("filters")
    ranker, threshold, (embedding_weight, text_weight) = _ranking_options(
        body.get("ranking_options")
    )
    rewrite = body.get("rewrite_query", False)
    if not isinstance(rewrite, bool):
        raise InvalidRequest("rewrite_query must be a boolean.", param="rewrite_query")
    return SearchOptions(
        queries=_queries(body.get("query")),
        filters=None if filters is None else parse_filters(filters, "filters"),
        max_num_results=_max_results(body.get("max_num_results", DEFAULT_MAX_RESULTS)),
        ranker=ranker,
        score_threshold=threshold,
        rewrite_query=rewrite,
        embedding_weight=embedding_weight,
        text_weight=text_weight,
    )


def _queries(raw: object) -> tuple[str, ...]:
    queries = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(queries, list)
        or not queries
        or len(queries) > MAX_QUERIES
        or not all(isinstance(q, str) and q.strip() for q in queries)
    ):
        raise InvalidRequest(
            f"query must be a non-empty string or a list of 1 to {MAX_QUERIES} of them.",
            param="query",
        )
    return tuple(queries)


def _max_results(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_RESULTS:
        raise InvalidRequest(
            f"max_num_results must be an integer from 1 to {MAX_RESULTS}.",
            param="max_num_results",
        )
    return raw


def _ranking_options(raw: object) -> tuple[Ranker, float, tuple[float, float]]:
    if raw is None:
        return "auto", 0.0, (1.0, 1.0)
    if not isinstance(raw, Mapping):
        raise InvalidRequest("ranking_options must be an object.", param="ranking_options")
    known = ("ranker", "score_threshold", "hybrid_search")
    extra = sorted(str(k) for k in raw if k not in known)
    if extra:
        raise InvalidRequest(
            f"Unknown ranking option: {extra[0]}.", param=f"ranking_options.{extra[0]}"
        )
    ranker = raw.get("ranker", "auto")
    if ranker not in RANKERS:
        raise InvalidRequest(
            f"ranker must be one of {', '.join(RANKERS)}; got {ranker!r}.",
            param="ranking_options.ranker",
        )
    threshold = raw.get("score_threshold", 0.0)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or not 0 <= threshold <= 1
    ):
        raise InvalidRequest(
            "score_threshold must be a number from 0 to 1.",
            param="ranking_options.score_threshold",
        )
    return ranker, float(threshold), _weights(raw.get("hybrid_search"))


def _weights(raw: object) -> tuple[float, float]:
    """(embedding_weight, text_weight) of ``ranking_options.hybrid_search``."""
    param = "ranking_options.hybrid_search"
    if raw is None:
        return 1.0, 1.0
    if not isinstance(raw, Mapping):
        raise InvalidRequest("hybrid_search must be an object.", param=param)
    extra = sorted(str(k) for k in raw if k not in ("embedding_weight", "text_weight"))
    if extra:
        raise InvalidRequest(f"Unknown hybrid_search option: {extra[0]}.", param=param)
    weights = []
    for name in ("embedding_weight", "text_weight"):
        value = raw.get(name, 1.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise InvalidRequest(f"{name} must be a number of at least 0.", param=f"{param}.{name}")
        weights.append(float(value))
    if weights == [0.0, 0.0]:
        raise InvalidRequest("embedding_weight and text_weight cannot both be 0.", param=param)
    return weights[0], weights[1]
