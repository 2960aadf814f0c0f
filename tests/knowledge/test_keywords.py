"""Search terms and the BM25 formula, alone."""

from __future__ import annotations

import math

import pytest

from tokenmill.knowledge.keywords import CorpusStats, bm25, idf, query_terms, stem, terms


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
    stats = CorpusStats(chunk_count=10, average_length=20.0, document_frequency={"tea": 2})
    expected = math.log(1 + 8.5 / 2.5) * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 40 / 20))
    assert bm25(["tea", "tea", "absent"], {"tea": 3}, 40, stats) == pytest.approx(expected)
    assert bm25(["absent"], {"tea": 3}, 40, stats) == 0.0
    assert idf(10, 10) > 0  # a term in every chunk still counts a little, never negatively
    shorter = bm25(["tea"], {"tea": 3}, 10, stats)
    assert shorter > bm25(["tea"], {"tea": 3}, 40, stats)  # length normalisation
