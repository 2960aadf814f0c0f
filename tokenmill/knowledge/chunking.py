"""Chunking strategies of vector store files, and the split of a text into token-budgeted chunks.

``parse_chunking_strategy`` reads a request's ``chunking_strategy`` (``auto`` or ``static``)
into a ``ChunkingStrategy``; ``auto`` is resolved against the embedding model's window by
``auto_strategy``. ``split`` cuts a text into chunks of at most ``max_chunk_size_tokens`` tokens,
each next chunk repeating up to ``chunk_overlap_tokens`` tokens of the one before (fewer when
that would begin inside a word), preferring to end a chunk at a paragraph break, then at a
sentence or line end, then between words, within the budget.

Tokens are counted by a ``Tokenizer``: a callable giving each token's character span in the
text. Chunks begin at a token's start; a chunk ends where the next chunk's new tokens begin (so
it keeps the whitespace after its last token), and the last chunk ends with the text. The chunks'
spans therefore cover the whole text in order, which is what citations quote.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmill.errors import InvalidRequest

Tokenizer = Callable[[str], Sequence[tuple[int, int]]]
"""A text's tokens, as (start, end) character offsets in order, without special tokens."""

MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
OPENAI_AUTO_CHUNK_TOKENS = 800  # OpenAI's auto: 800 tokens, 400 of overlap
OPENAI_AUTO_OVERLAP_TOKENS = 400

_SENTENCE_END = re.compile(r"[.!?;:][\"')\]]*$")


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """A resolved strategy: ``type`` is what the client asked for (``auto`` or ``static``)."""

    type: str
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int

    def body(self) -> dict[str, Any]:
        """The strategy as the API reports it on a vector store file (auto shows as static)."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            },
        }


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the source text: ``text == source[start:end]``."""

    index: int
    text: str
    start: int
    end: int
    tokens: int


def auto_strategy(max_sequence_tokens: int, special_tokens: int = 2) -> ChunkingStrategy:
    """The ``auto`` strategy for an embedding model reading at most ``max_sequence_tokens``.

    OpenAI's auto (800 tokens, 400 overlap) is kept when the model can read it. A smaller window
    (all-MiniLM-L6-v2 reads 256 word pieces, [CLS] and [SEP] included) gets chunks of 7/8 of
    what is left after the special tokens, the rest headroom for a chunk's text tokenizing
    slightly differently alone than inside the document, and a quarter of that as overlap:
    a half overlap would double the embeddings for little recall on chunks this short.
    MiniLM: 254 usable, so 222 tokens with 55 of overlap.
    """
    usable = max_sequence_tokens - special_tokens
    if usable >= OPENAI_AUTO_CHUNK_TOKENS + OPENAI_AUTO_CHUNK_TOKENS // 8:
        return ChunkingStrategy("auto", OPENAI_AUTO_CHUNK_TOKENS, OPENAI_AUTO_OVERLAP_TOKENS)
    size = usable * 7 // 8
    if size < 1:
        raise ValueError(f"a model reading {max_sequence_tokens} tokens cannot embed chunks")
    return ChunkingStrategy("auto", size, size // 4)


def parse_chunking_strategy(
    raw: object, auto: ChunkingStrategy, param: str = "chunking_strategy"
) -> ChunkingStrategy:
    """A request's ``chunking_strategy`` (absent means ``auto``), validated as OpenAI does."""
    if raw is None:
        return auto
    if not isinstance(raw, Mapping):
        raise InvalidRequest("chunking_strategy must be an object.", param=param)
    kind = raw.get("type")
    if kind == "auto":
        _only(raw, {"type"}, param)
        return auto
    if kind != "static":
        raise InvalidRequest(
            f"Unknown chunking strategy type {kind!r}; expected 'auto' or 'static'.",
            param=f"{param}.type",
        )
    _only(raw, {"type", "static"}, param)
    static = raw.get("static")
    if not isinstance(static, Mapping):
        raise InvalidRequest(
            "A static chunking strategy needs a 'static' object.", param=f"{param}.static"
        )
    _only(static, {"max_chunk_size_tokens", "chunk_overlap_tokens"}, f"{param}.static")
    size = _integer(static, "max_chunk_size_tokens", f"{param}.static")
    overlap = _integer(static, "chunk_overlap_tokens", f"{param}.static")
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise InvalidRequest(
            f"max_chunk_size_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS} "
            f"(got {size}).",
            param=f"{param}.static.max_chunk_size_tokens",
        )
    if not 0 <= overlap <= size // 2:
        raise InvalidRequest(
            f"chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens "
            f"({size // 2}); got {overlap}.",
            param=f"{param}.static.chunk_overlap_tokens",
        )
    return ChunkingStrategy("static", size, overlap)


def check_fits(strategy: ChunkingStrategy, auto: ChunkingStrategy, param: str) -> None:
    """Refuse a static strategy whose chunks the embedding model cannot read whole."""
    if strategy.max_chunk_size_tokens > auto.max_chunk_size_tokens:
        raise InvalidRequest(
            f"max_chunk_size_tokens {strategy.max_chunk_size_tokens} exceeds what this vector "
            f"store's embedding model reads ({auto.max_chunk_size_tokens} tokens per chunk).",
            param=f"{param}.static.max_chunk_size_tokens",
        )


def _only(raw: Mapping[Any, Any], allowed: set[str], param: str) -> None:
    extra = sorted(str(k) for k in raw if k not in allowed)
    if extra:
        raise InvalidRequest(f"Unknown field(s): {', '.join(extra)}.", param=param)


def _integer(raw: Mapping[Any, Any], name: str, param: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer.", param=f"{param}.{name}")
    return value


def split(text: str, tokenizer: Tokenizer, strategy: ChunkingStrategy) -> list[Chunk]:
    """The chunks of ``text``; none for a text without tokens."""
    size, overlap = strategy.max_chunk_size_tokens, strategy.chunk_overlap_tokens
    if size < 1 or not 0 <= overlap <= size // 2:
        raise ValueError(f"unusable chunk budget {size}/{overlap}")
    spans = list(tokenizer(text))
    count = len(spans)
    if count == 0:
        return []
    # A chunk holds tokens [first, last); the next one starts ``overlap`` tokens before ``last``.
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + size, count)  # exclusive
        if last < count:
            last = _best_break(text, spans, first + max(overlap, size // 2) + 1, last)
        start = 0 if first == 0 else spans[first][0]
        end = len(text) if last == count else spans[last][0]
        chunks.append(Chunk(len(chunks), text[start:end], start, end, last - first))
        if last == count:
            return chunks
        first = last - overlap
        while first < last and spans[first - 1][1] >= spans[first][0]:
            first += 1  # the overlap starts at a word, not inside one (a shorter overlap)


def _best_break(text: str, spans: Sequence[tuple[int, int]], lowest: int, highest: int) -> int:
    """The token index in [lowest, highest] to end a chunk before: the latest paragraph break,
    else the latest sentence or line end, else the latest space between words, else ``highest``
    (a word longer than the budget)."""
    sentence = space = None
    for i in range(highest, max(lowest, 1) - 1, -1):
        gap = text[spans[i - 1][1] : spans[i][0]]
        if not gap:
            continue
        if "\n\n" in gap or "\n\r\n" in gap:
            return i
        if sentence is None and (
            "\n" in gap or _SENTENCE_END.search(text[spans[i - 1][0] : spans[i - 1][1]])
        ):
            sentence = i
        if space is None:
            space = i
    for choice in (sentence, space):
        if choice is not None:
            return choice
    return highest


def whitespace_tokenizer(text: str) -> list[tuple[int, int]]:
    """Words between whitespace: a stand-in tokenizer for tests and rough counts."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def wordpiece_tokenizer(directory: Path) -> Tokenizer:
    """The embedding model's own tokenizer (a Hugging Face ``tokenizer.json``), offline."""
    from tokenizers import Tokenizer as HfTokenizer

    loaded = HfTokenizer.from_file(str(directory / "tokenizer.json"))
    loaded.no_truncation()
    loaded.no_padding()  # MiniLM's pads to 128 tokens: (0, 0) spans that are no text

    def offsets(text: str) -> list[tuple[int, int]]:
        encoding = loaded.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    return offsets
