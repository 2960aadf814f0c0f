"""File citations: ``[n]`` markers the model wrote, else the passage the answer shares the most
content words with, else nothing."""

from __future__ import annotations

from typing import Any

from tokenmill.responses.citations import annotate

Json = dict[str, Any]
TEA: Json = {
    "file_id": "file_tea",
    "filename": "tea.txt",
    "text": "Green tea is brewed at 80 degrees.",
}
COFFEE: Json = {
    "file_id": "file_coffee",
    "filename": "coffee.txt",
    "text": "Espresso is brewed under nine bars of pressure with finely ground coffee.",
}
GARDEN: Json = {"file_id": "file_garden", "text": "Water the tomatoes at dawn."}
RESULTS = [TEA, COFFEE, GARDEN]


def cited(annotations: list[Json]) -> list[tuple[str, int]]:
    return [(a["file_id"], a["index"]) for a in annotations]


def test_a_marker_cites_its_result_at_the_marker() -> None:
    text = "Brew it at 80 degrees [1]."
    [annotation] = annotate(text, RESULTS)
    assert annotation == {
        "type": "file_citation",
        "file_id": "file_tea",
        "filename": "tea.txt",
        "index": text.index("[1]"),
    }


def test_every_marker_and_every_number_in_one_counts() -> None:
    text = "Tea wants 80 degrees [1]; espresso wants pressure [2, 3] and [ 2 ;1 ]."
    first, pair, spaced = text.index("[1]"), text.index("[2, 3]"), text.index("[ 2 ;1 ]")
    assert cited(annotate(text, RESULTS)) == [
        ("file_tea", first),
        ("file_coffee", pair),
        ("file_garden", pair),
        ("file_coffee", spaced),
        ("file_tea", spaced),
    ]


def test_full_width_brackets_count() -> None:
    text = "Espresso needs pressure【2】."
    assert cited(annotate(text, RESULTS)) == [("file_coffee", text.index("【"))]


def test_numbers_outside_the_results_are_ignored() -> None:
    text = "See [0], [4] and [2]."
    assert cited(annotate(text, RESULTS)) == [("file_coffee", text.index("[2]"))]
    assert annotate("As noted in [7].", RESULTS) == []  # nothing shared to fall back on


def test_a_missing_filename_is_an_empty_string() -> None:
    [annotation] = annotate("Tomatoes [3].", RESULTS)
    assert annotation["file_id"] == "file_garden" and annotation["filename"] == ""


def test_without_markers_the_best_overlapping_passage_is_cited_at_the_end() -> None:
    text = "Espresso is brewed under high pressure from finely ground beans."
    assert cited(annotate(text, RESULTS)) == [("file_coffee", len(text))]
    tea = "Green tea should be brewed at about 80 degrees."
    assert cited(annotate(tea, RESULTS)) == [("file_tea", len(tea))]


def test_case_and_punctuation_do_not_hide_an_overlap() -> None:
    text = "GREEN-TEA, BREWED: 80 DEGREES!"
    assert cited(annotate(text, RESULTS)) == [("file_tea", len(text))]


def test_stopwords_and_short_words_are_not_content() -> None:
    # "is", "at", "the" are shared with the passages but carry nothing.
    assert annotate("It is at the door.", RESULTS) == []
    # two shared content words are not enough
    assert annotate("Green tea sounds lovely today.", RESULTS) == []


def test_an_answer_sharing_nothing_cites_nothing() -> None:
    assert annotate("I do not know.", RESULTS) == []


def test_no_results_or_no_text_cite_nothing() -> None:
    assert annotate("Brew it at 80 degrees [1].", []) == []
    assert annotate("", RESULTS) == []
    assert annotate("   ", RESULTS) == []


def test_a_result_without_text_is_never_the_overlap() -> None:
    results: list[Json] = [{"file_id": "file_empty", "text": None}, TEA]
    text = "Green tea brewed at 80 degrees."
    assert cited(annotate(text, results)) == [("file_tea", len(text))]
