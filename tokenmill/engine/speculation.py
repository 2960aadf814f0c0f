"""Prompt-lookup speculation: draft the next tokens by finding the latest n-gram in context.

When a model copies from its prompt (rewriting, quoting, editing code), the tokens after the
last few generated ones have often appeared before. Those that follow the earlier occurrence
are proposed as drafts and verified in one decode step; with greedy sampling the output is
the same as without drafts, only sooner.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

MAX_NGRAM = 3


def propose(tokens: Sequence[int], max_drafts: int, max_ngram: int = MAX_NGRAM) -> list[int]:
    """Up to ``max_drafts`` tokens that followed the latest earlier match of the longest
    suffix (``max_ngram`` tokens down to one) of ``tokens``."""
    if max_drafts < 1 or len(tokens) < 2:
        return []
    raw = array("i", tokens).tobytes()
    size = array("i").itemsize
    for n in range(min(max_ngram, len(tokens) - 1), 0, -1):
        tail = raw[-n * size :]
        end = len(raw) - size  # the match must start before the tail itself
        while True:
            at = raw.rfind(tail, 0, end)
            if at < 0:
                break
            if at % size == 0:
                start = at // size + n
                return list(tokens[start : start + max_drafts])
            end = at + len(tail) - 1
    return []
