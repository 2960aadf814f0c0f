from __future__ import annotations

import math

import numpy as np

from tokenmill.engine.logprobs import log_softmax_top, token_logprob


def test_log_softmax_of_the_token_and_the_top_sorted() -> None:
    logits = np.array([1.0, 3.0, 2.0, 3.0], dtype=np.float32)
    chosen, top = log_softmax_top(logits, 2, 3)
    total = math.log(sum(math.exp(x) for x in (1.0, 3.0, 2.0, 3.0)))
    assert math.isclose(chosen, 2.0 - total)
    assert [token for token, _ in top] == [1, 3, 2]  # ties by token id
    assert all(math.isclose(lp, float(logits[t]) - total) for t, lp in top)


def test_large_logits_do_not_overflow_and_sum_to_one() -> None:
    logits = np.array([1000.0, 999.0, -1000.0], dtype=np.float32)
    chosen, top = log_softmax_top(logits, 0, 10)
    assert chosen <= 0.0
    assert math.isclose(sum(math.exp(lp) for _, lp in top), 1.0)
    assert len(top) == 3


def test_no_top_when_none_is_asked() -> None:
    assert log_softmax_top(np.zeros(4, dtype=np.float32), 1, 0) == (math.log(0.25), [])


def test_token_logprob_names_pieces() -> None:
    pieces = {0: b"a", 1: b"b"}
    result = token_logprob(np.array([0.0, 1.0], dtype=np.float32), 0, 1, pieces.__getitem__)
    assert result.piece == b"a"
    assert [top.piece for top in result.top] == [b"b"]
