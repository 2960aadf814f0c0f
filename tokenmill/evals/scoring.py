"""Scoring one model on one example through the platform's own serving path.

Generation: the prompt (chat messages, or a prompt's text) is sent greedily (temperature 0,
``max_tokens`` bounded by the reference's length plus a margin) and the answer is scored by
``metrics``. Loss: the prompt and the reference are echoed back with their logprobs
(``/v1/completions`` with ``echo``, ``logprobs`` and ``max_tokens`` 0) and the reference's
tokens are summed; a chat prompt is rendered with the model's chat template first, so the
reference follows exactly the text the model answers after. Calls are injected (``Calls``):
on a gateway each is a request of the evaluation's key, metered and billed like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from tokenmill.evals.examples import Example
from tokenmill.evals.metrics import GENERATION_METRICS, LOSS, Tally, reference_nll, score_output
from tokenmill.evals.objects import EvalInfo

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MARGIN_TOKENS = 16
MAX_GENERATED_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


class Calls(Protocol):
    def send(self, info: EvalInfo, path: str, body: dict[str, Any]) -> Reply:
        """One request as the evaluation's key (blocking, thread-safe); a refusal is a reply."""
        ...

    def render(self, info: EvalInfo, model: str, messages: list[dict[str, Any]]) -> str | None:
        """The prompt text ``model`` answers after, for these messages (its chat template);
        None when it has none."""
        ...


def token_bound(reference: str) -> int:
    """Enough tokens for the reference (a token is at least about two characters) and a
    margin; the bound keeps a rambling model's cost small."""
    return min(len(reference) // 2 + MARGIN_TOKENS, MAX_GENERATED_TOKENS)


def score_example(
    calls: Calls,
    info: EvalInfo,
    model: str,
    example: Example,
    pattern: re.Pattern[str] | None,
    tally: Tally,
) -> None:
    metrics = info.request.metrics
    generation = [m for m in metrics if m in GENERATION_METRICS]
    if generation:
        output = _generate(calls, info, model, example)
        if output is None:
            tally.failed()
        else:
            for metric, value in score_output(
                generation, output, example.reference, pattern
            ).items():
                tally.add(metric, value)
    if LOSS in metrics:
        scored = _loss(calls, info, model, example)
        if scored is None:
            tally.failed()
        elif scored[1]:
            tally.add(LOSS, scored[0], scored[1])


def _generate(calls: Calls, info: EvalInfo, model: str, example: Example) -> str | None:
    body: dict[str, Any] = {
        "model": model,
        "temperature": 0,
        "max_tokens": token_bound(example.reference),
    }
    if example.messages is not None:
        reply = calls.send(info, CHAT_PATH, {**body, "messages": list(example.messages)})
        if reply.status != 200:
            return None
        return str(_first(reply)["message"].get("content") or "")
    reply = calls.send(info, COMPLETIONS_PATH, {**body, "prompt": example.prompt})
    return str(_first(reply)["text"]) if reply.status == 200 else None


def _loss(calls: Calls, info: EvalInfo, model: str, example: Example) -> tuple[float, int] | None:
    prefix = example.prompt or ""
    if example.messages is not None:
        rendered = calls.render(info, model, list(example.messages))
        if rendered is None:
            return None
        prefix = rendered
    text = prefix + example.reference
    body = {"model": model, "prompt": text, "echo": True, "logprobs": 0, "max_tokens": 0}
    reply = calls.send(info, COMPLETIONS_PATH, body)
    if reply.status != 200:
        return None
    logprobs = _first(reply).get("logprobs") or {}
    return reference_nll(
        logprobs.get("token_logprobs") or [],
        logprobs.get("text_offset") or [],
        len(prefix),
        len(text),
    )


def _first(reply: Reply) -> dict[str, Any]:
    choices = reply.body.get("choices") or [{}]
    first: dict[str, Any] = choices[0]
    return first
