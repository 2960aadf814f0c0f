"""Values that cross the engine's boundary: what goes in, what comes out, what is kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tenancy import Priority

FinishReason = Literal["stop", "length", "cancelled", "error"]
ChoiceFinishReason = FinishReason | Literal["tool_calls"]  # the engine's, or a choice that called
OutcomeStatus = Literal["finished", "cancelled"]


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """A request checked against the model: its prompt fits and its token budget is known."""

    request_id: str
    prompt_tokens: tuple[int, ...]
    max_tokens: int
    sampling: SamplingParams
    grammar: str | None = None  # GBNF constraining the output, checked by llama.cpp already
    # A lazy grammar: it applies only once the whole output so far matches this regex, from
    # the regex's first group on (the model chose to call a tool); None: from the start.
    grammar_trigger: str | None = None
    tenant: str = ""  # whose work this is, for fair share between tenants
    weight: float = 1.0  # that tenant's share relative to others (> 0)
    priority: Priority = Priority.DEFAULT  # its queue class
    adapter: str | None = None  # the LoRA adapter to compute with (``adapters``); None: the base
    # The log-probability of each prompt token after the first (``echo`` with ``logprobs``):
    # logits for every prompt position, and no prefix reused from the cache.
    prompt_logprobs: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def choices_usage(usages: Sequence[Usage]) -> Usage:
    """The usage of a request's choices together: the prompt once, every completion token.

    The prompt (and its cached part) is the first choice's; the others share it.
    """
    first = usages[0]
    return Usage(
        prompt_tokens=first.prompt_tokens,
        completion_tokens=sum(usage.completion_tokens for usage in usages),
        cached_tokens=first.cached_tokens,
    )


@dataclass(frozen=True, slots=True)
class TopLogprob:
    piece: bytes
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A sampled token's log-probability and the likeliest tokens at its position."""

    piece: bytes
    logprob: float
    top: tuple[TopLogprob, ...]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Newly generated text, safe to show: whole characters, no part of a stop string.

    ``logprobs`` (when the request asked for them) covers the tokens sampled since the last
    delta, which may be more or fewer than the characters suggest.
    """

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptLogprobs:
    """The prompt's tokens with their log-probabilities (``first`` has none: nothing comes
    before it), sent once the prompt is computed, before any generated text."""

    first: bytes
    logprobs: tuple[TokenLogprob, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of every request."""

    finish_reason: ChoiceFinishReason
    usage: Usage
    error: str | None = None


EngineEvent = TextDelta | Finished | PromptLogprobs


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What the engine remembers of a request after it ends, for late cancellations."""

    request_id: str
    status: OutcomeStatus
    usage: Usage
