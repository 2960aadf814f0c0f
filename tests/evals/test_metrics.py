"""The scorers, alone: one output against one reference, and a model's tally of them."""

from __future__ import annotations

import math
import re

import pytest

from tokenmill.evals.metrics import (
    Tally,
    contains,
    exact_match,
    json_valid,
    reference_nll,
    regex_match,
    score_output,
)


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [("  Paris\n", "Paris", True), ("paris", "Paris", False), ("Paris.", "Paris", False)],
)
def test_exact_match_compares_stripped_text(output: str, reference: str, expected: bool) -> None:
    assert exact_match(output, reference) is expected


def test_contains_looks_for_the_stripped_reference() -> None:
    assert contains("The capital is Paris, of course.", " Paris ")
    assert not contains("The capital is Lyon.", "Paris")


@pytest.mark.parametrize(
    ("output", "expected"),
    [('{"a": 1}', True), (" [1, 2]\n", True), ("{'a': 1}", False), ("", False), ("{", False)],
)
def test_json_valid_parses_the_stripped_output(output: str, expected: bool) -> None:
    assert json_valid(output) is expected


def test_regex_searches_anywhere_in_the_output() -> None:
    pattern = re.compile(r"\d{4}-\d{2}-\d{2}")
    assert regex_match("Due on 2026-12-02.", pattern)
    assert not regex_match("Due tomorrow.", pattern)


def test_score_output_scores_only_the_metrics_asked() -> None:
    scores = score_output(["exact_match", "json_valid", "loss"], '{"a":1}', '{"a":1}', None)
    assert scores == {"exact_match": 1.0, "json_valid": 1.0}
    assert score_output(["regex"], "x", "y", re.compile("x")) == {"regex": 1.0}


def test_reference_nll_sums_only_the_tokens_that_start_in_the_reference() -> None:
    # "Q: hi\nA:" then " Blue." as tokens: "Q:", " hi", "\nA:", " Blue", "."
    logprobs = [None, -2.0, -1.0, -0.5, -0.25]
    offsets = [0, 2, 5, 8, 13]
    assert reference_nll(logprobs, offsets, 8, 14) == (0.75, 2)
    assert reference_nll(logprobs, offsets, 0, 14) == (3.75, 4)  # the first has no logprob


def test_a_tally_reports_means_counts_errors_and_perplexity() -> None:
    tally = Tally.empty()
    for value in (1.0, 0.0, 1.0, 1.0):
        tally.add("exact_match", value)
    tally.add("loss", 3.0, 2)
    tally.add("loss", 1.0, 2)
    tally.failed()
    summary = tally.summary(["exact_match", "contains", "loss"])
    assert summary["exact_match"] == {"mean": 0.75, "count": 4}
    assert summary["contains"] == {"mean": None, "count": 0}
    assert summary["loss"]["mean"] == 1.0 and summary["loss"]["count"] == 4
    assert math.isclose(summary["loss"]["perplexity"], math.e)
    assert summary["errors"] == 1
