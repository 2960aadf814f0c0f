"""The prompt's own log-probabilities (``echo`` with ``logprobs``): which logits rows a step
needs for them, and what those rows say.

Position ``p`` of the prompt predicts token ``p + 1``: a prompt of ``n`` tokens has ``n - 1``
log-probabilities, read from positions ``0 .. n - 2`` as their chunks are computed (the last
position's logits are the first sample's). A sequence recomputed after preemption keeps what
it already has and asks only for the rest. Requests that did not ask cost nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tokenmill.engine.logprobs import token_logprob
from tokenmill.engine.request import PromptLogprobs
from tokenmill.engine.sequence import Sequence as EngineSequence


def echo_offsets(seq: EngineSequence, start: int, count: int) -> tuple[int, ...]:
    """Offsets into the chunk ``tokens[start:start + count]`` whose logits give a prompt token's
    log-probability not yet recorded; () unless the request asked for them."""
    if not seq.request.prompt_logprobs:
        return ()
    first = max(start, len(seq.prompt_logprobs))
    end = min(start + count, seq.prompt_len - 1)
    return tuple(position - start for position in range(first, end))


def record_echo(
    seq: EngineSequence,
    start: int,
    offsets: Sequence[int],
    rows: Sequence[int],
    logits: Callable[[int], Any],
    piece: Callable[[int], bytes],
) -> None:
    """Appends the log-probability of the token after each of ``offsets`` (read from its
    ``rows`` before the next decode overwrites them)."""
    top = seq.request.sampling.top_logprobs
    for offset, row in zip(offsets, rows, strict=True):
        token = seq.tokens[start + offset + 1]
        seq.prompt_logprobs.append(token_logprob(logits(row), token, top, piece))


def echo_event(seq: EngineSequence, piece: Callable[[int], bytes]) -> PromptLogprobs:
    return PromptLogprobs(piece(seq.request.prompt_tokens[0]), tuple(seq.prompt_logprobs))
