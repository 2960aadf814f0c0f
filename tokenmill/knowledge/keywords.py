"""Keyword search's terms and its BM25 score, computed from stored counts (pure).

``terms`` splits a text into lowercase words (letters and digits; ``XR-7734`` gives ``xr`` and
``7734``), drops a short list of English stop words and applies a light stemmer that only folds
plurals (``batteries`` → ``battery``, ``boxes`` → ``box``, ``cables`` → ``cable``), so a query
matches the forms a document uses without the surprises of an aggressive stemmer.

``bm25_parts`` scores chunks for a query from integers every database stores alike (term
frequencies, document frequencies, chunk lengths, the number of chunks), so SQLite and
PostgreSQL give the same score to the last bit:

    score = Σ over distinct query terms t in the chunk of
            idf(t) · tf · (k1 + 1) / (tf + k1 · (1 - b + b · length / average length))
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

with k1 = 1.2, b = 0.75 (the idf is Lucene's, never negative). A query term repeated counts
once. A chunk's parts are summed in sorted term order.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
MAX_TERM_CHARS = 64  # longer "words" (hashes, base64) are cut to this

_WORD = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "were",
        "which",
        "will",
        "with",
        "what",
        "when",
        "where",
        "who",
        "how",
        "do",
        "does",
        "did",
        "not",
        "no",
        "so",
        "than",
        "too",
        "very",
        "can",
        "i",
        "you",
        "he",
        "she",
        "we",
        "our",
        "your",
    ]
)


def stem(word: str) -> str:
    """Folds an English plural onto its singular; leaves other words (and numbers) alone."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The text's search terms, in order, repeats kept."""
    found = []
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if word in STOP_WORDS:
            continue
        found.append(stem(word)[:MAX_TERM_CHARS])
    return found


def query_terms(text: str) -> list[str]:
    """A query's distinct terms, sorted."""
    return sorted(set(terms(text)))


def term_frequencies(text: str) -> tuple[Counter[str], int]:
    """Each term's count in the text, and the text's length in terms."""
    found = terms(text)
    return Counter(found), len(found)


def idf(chunk_count: int, document_frequency: int) -> float:
    return math.log(1.0 + (chunk_count - document_frequency + 0.5) / (document_frequency + 0.5))


def bm25_parts(
    idfs: npt.NDArray[np.float64],
    tf: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.float64],
    average_length: float,
    *,
    k1: float = K1,
    b: float = B,
) -> npt.NDArray[np.float64]:
    """Each posting's part of its chunk's BM25 score, from arrays alike: the posting's term's
    idf, the term's frequency in the chunk, and the chunk's length in terms."""
    average = average_length if average_length > 0 else 1.0
    norm = k1 * (1.0 - b + b * lengths / average)
    parts: npt.NDArray[np.float64] = idfs * tf * (k1 + 1.0) / (tf + norm)
    return parts
