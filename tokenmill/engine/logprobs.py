"""Log-probabilities of a sampled token and of the likeliest tokens, from raw logits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenmill.engine.request import TokenLogprob, TopLogprob


def log_softmax_top(
    logits: npt.NDArray[Any], token: int, top: int
) -> tuple[float, list[tuple[int, float]]]:
    """The token's log-probability, and the ``top`` likeliest (token, log-probability) pairs,
    likeliest first (ties by token id)."""
    values = logits.astype(np.float64)
    peak = values.max()
    log_total = peak + np.log(np.exp(values - peak).sum())
    chosen = float(values[token] - log_total)
    top = min(top, len(values))
    if top <= 0:
        return chosen, []
    ids = np.argpartition(values, -top)[-top:]
    ids = ids[np.lexsort((ids, -values[ids]))]
    return chosen, [(int(i), float(values[i] - log_total)) for i in ids]


def token_logprob(
    logits: npt.NDArray[Any], token: int, top: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    chosen, likeliest = log_softmax_top(logits, token, top)
    return TokenLogprob(
        piece(token), chosen, tuple(TopLogprob(piece(t), logprob) for t, logprob in likeliest)
    )
