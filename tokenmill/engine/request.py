"""Values that cross the engine's boundary: what goes in, what comes out, what is kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tokenmill.protocol.requests import SamplingParams

FinishReason = Literal["stop", "length", "cancelled", "error"]
OutcomeStatus = Literal["finished", "cancelled"]


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """A request checked against the model: its prompt fits and its token budget is known."""

    request_id: str
    prompt_tokens: tuple[int, ...]
    max_tokens: int
    sampling: SamplingParams


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Newly generated text, safe to show: whole characters, no part of a stop string."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of every request."""

    finish_reason: FinishReason
    usage: Usage
    error: str | None = None


EngineEvent = TextDelta | Finished


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What the engine remembers of a request after it ends, for late cancellations."""

    request_id: str
    status: OutcomeStatus
    usage: Usage
