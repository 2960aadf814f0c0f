"""How an evaluation scores a model: pure scorers over one output, and their tallies per model.

Generation metrics compare a model's greedy output with the example's reference:
``exact_match`` (equal once both are stripped), ``contains`` (the stripped reference occurs
in the output), ``json_valid`` (the stripped output parses as JSON) and ``regex`` (the pattern
given with the evaluation matches somewhere in the output, ``re.search``). Each scores 1 or 0
per example; a model's figure is their mean over the examples it answered, with the count.

``loss`` is the mean negative log-likelihood of the reference's tokens given the prompt,
over every reference token of the split (token-weighted), with ``perplexity = exp(loss)``;
its count is the number of tokens scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

GENERATION_METRICS = ("exact_match", "contains", "json_valid", "regex")
LOSS = "loss"
METRICS = (*GENERATION_METRICS, LOSS)


def exact_match(output: str, reference: str) -> bool:
    return output.strip() == reference.strip()


def contains(output: str, reference: str) -> bool:
    return reference.strip() in output


def json_valid(output: str) -> bool:
    try:
        orjson.loads(output.strip())
    except orjson.JSONDecodeError:
        return False
    return True


def regex_match(output: str, pattern: re.Pattern[str]) -> bool:
    return pattern.search(output) is not None


def score_output(
    metrics: Iterable[str], output: str, reference: str, pattern: re.Pattern[str] | None
) -> dict[str, float]:
    """Each generation metric among ``metrics`` for one output: 1.0 or 0.0."""
    scores: dict[str, float] = {}
    for metric in metrics:
        if metric == "exact_match":
            scores[metric] = float(exact_match(output, reference))
        elif metric == "contains":
            scores[metric] = float(contains(output, reference))
        elif metric == "json_valid":
            scores[metric] = float(json_valid(output))
        elif metric == "regex" and pattern is not None:
            scores[metric] = float(regex_match(output, pattern))
    return scores


def reference_nll(
    token_logprobs: Sequence[float | None], text_offsets: Sequence[int], start: int, end: int
) -> tuple[float, int]:
    """Summed negative log-likelihood and count of the echoed tokens that begin inside
    ``[start, end)`` of the echoed text (the reference), from a completion's legacy logprobs."""
    total, count = 0.0, 0
    for logprob, offset in zip(token_logprobs, text_offsets, strict=True):
        if logprob is not None and start <= offset < end:
            total -= logprob
            count += 1
    return total, count


@dataclass(slots=True)
class Tally:
    """One model's running sums, metric by metric."""

    sums: dict[str, float]
    counts: dict[str, int]
    errors: int = 0

    @classmethod
    def empty(cls) -> Tally:
        return cls({}, {})

    def add(self, metric: str, value: float, count: int = 1) -> None:
        self.sums[metric] = self.sums.get(metric, 0.0) + value
        self.counts[metric] = self.counts.get(metric, 0) + count

    def failed(self) -> None:
        self.errors += 1

    def summary(self, metrics: Iterable[str]) -> dict[str, Any]:
        """``{metric: {"mean", "count"}}`` (loss also with ``perplexity``), and ``errors``."""
        out: dict[str, Any] = {}
        for metric in metrics:
            count = self.counts.get(metric, 0)
            mean = self.sums.get(metric, 0.0) / count if count else None
            entry: dict[str, Any] = {"mean": mean, "count": count}
            if metric == LOSS:
                entry["perplexity"] = _perplexity(mean)
            out[metric] = entry
        out["errors"] = self.errors
        return out


def _perplexity(loss: float | None) -> float | None:
    if loss is None:
        return None
    return math.exp(loss) if loss < 700 else math.inf
