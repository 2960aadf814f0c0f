"""Search terms and the BM25 formula, alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokenmill.knowledge.keywords import bm25_parts, idf, query_terms, stem, terms


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("batteries", "battery"),
        ("boxes", "box"),
        ("cables", "cable"),
        ("glass", "glass"),
        ("status", "status"),
        ("analysis", "analysis"),
        ("gas", "gas"),
        ("4471s", "4471s"),
    ],
)
def test_the_stemmer_folds_plurals_only(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_terms_are_lowercase_words_without_stop_words() -> None:
    assert terms("The Batteries of XR-7734, and_the cables!") == [
        "battery",
        "xr",
        "7734",
        "cable",
    ]
    assert terms("Größe Straße") == ["größe", "straße"]
    assert query_terms("cable cables CABLE the") == ["cable"]
    assert len(terms("x" * 500)[0]) == 64


def test_bm25_by_hand() -> None:
    expected = math.log(1 + 8.5 / 2.5) * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 40 / 20))
    tea = idf(10, 2)
    assert tea == pytest.approx(math.log(1 + 8.5 / 2.5))
    parts = bm25_parts(np.array([tea, tea]), np.array([3.0, 3.0]), np.array([40.0, 10.0]), 20.0)
    assert parts[0] == pytest.approx(expected)
    assert parts[1] > parts[0]  # length normalisation: the shorter chunk scores higher
    assert idf(10, 10) > 0  # a term in every chunk still counts a little, never negatively
