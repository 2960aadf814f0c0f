"""File citations for an answer written from file search results.

The model is shown the results numbered (``[1]``, ``[2]``, ...) and asked to cite them so; each
marker it writes that names a result becomes a ``file_citation`` annotation at the marker's
position. Small models often answer from the passages without writing a marker: then the answer
is attributed to the result it shares the most content words with (at least
``MIN_SHARED_WORDS`` of them), cited at the end of the text. An answer that shares nothing with
any result cites nothing.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*[\]】]")
WORD = re.compile(r"[a-z0-9]+")
MIN_SHARED_WORDS = 3
STOPWORDS = frozenset(
    (
        "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do",
        "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in",
        "into", "is", "it", "its", "may", "more", "most", "no", "not", "of", "on", "or", "our",
        "she", "should", "so", "such", "than", "that", "the", "their", "them", "then", "there",
        "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "which", "who",
        "will", "with", "would", "you", "your",
    )
)  # fmt: skip


def citation(result: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "type": "file_citation",
        "file_id": result["file_id"],
        "filename": result.get("filename") or "",
        "index": index,
    }


def annotate(text: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The citations of ``text`` to ``results`` (numbered from 1 as the model saw them)."""
    if not results or not text.strip():
        return []
    annotations = []
    for match in MARKER.finditer(text):
        for number in re.split(r"\s*[,;]\s*", match.group(1)):
            n = int(number)
            if 1 <= n <= len(results):
                annotations.append(citation(results[n - 1], match.start()))
    if annotations:
        return annotations
    best = _best_overlap(text, results)
    return [] if best is None else [citation(results[best], len(text))]


def _best_overlap(text: str, results: list[dict[str, Any]]) -> int | None:
    words = _content_words(text)
    best, best_shared = None, MIN_SHARED_WORDS - 1
    for i, result in enumerate(results):
        shared = len(words & _content_words(str(result.get("text") or "")))
        if shared > best_shared:
            best, best_shared = i, shared
    return best


def _content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2}
