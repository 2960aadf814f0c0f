"""One request's runtime state while the engine works on it, free of any kernel library."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tokenmill.engine.request import EngineRequest, FinishReason, TextDelta, TokenLogprob, Usage
from tokenmill.engine.text_stream import TextStream


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True)
class Sequence:
    """Tokens so far (prompt, then output) and how many of them have KV cells computed.

    A step computes ``tokens[num_computed:]`` (all of it, or a chunk of a long prompt); once
    every token is computed the next one is sampled. Preemption drops the cells and sets
    ``num_computed`` back, so the same loop recomputes them later.
    """

    request: EngineRequest
    arrival_seconds: float
    tokens: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    slot: int | None = None
    block_table: list[int] = field(default_factory=list)
    num_computed: int = 0
    cached_tokens: int = 0
    admitted: bool = False
    finish_reason: FinishReason | None = None
    abort_requested: bool = False
    first_token_seconds: float | None = None
    last_token_seconds: float | None = None
    sampler: Any = None
    drafts: list[int] = field(default_factory=list)
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)  # of tokens 1, 2, ...
    echoed: bool = False  # the prompt's logprobs went out
    text: TextStream = field(init=False)

    def __post_init__(self) -> None:
        self.text = TextStream(self.request.sampling.stop)
        if not self.tokens:
            self.tokens = list(self.request.prompt_tokens)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def adapter(self) -> str | None:
        return self.request.adapter

    @property
    def reuses_prefix(self) -> bool:
        """Whether a cached prefix may stand in for computing it (not when its logits are
        wanted)."""
        return not self.request.prompt_logprobs

    @property
    def prompt_len(self) -> int:
        return len(self.request.prompt_tokens)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) - self.prompt_len

    @property
    def to_compute(self) -> int:
        return len(self.tokens) - self.num_computed

    @property
    def in_prefill(self) -> bool:
        """Still computing prompt (or recomputing after preemption) rather than decoding."""
        return self.to_compute > 1

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_len,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
        )

    def append(
        self,
        token: int,
        piece: bytes,
        *,
        is_eog: bool,
        now_seconds: float,
        logprob: TokenLogprob | None = None,
    ) -> str:
        """Record one sampled token; return the text it makes showable.

        Sets ``finish_reason`` when this token ends the request (end of generation, a stop
        string, or the token budget).
        """
        self.tokens.append(token)
        if logprob is not None and not is_eog:
            self.pending_logprobs.append(logprob)
        if self.first_token_seconds is None:
            self.first_token_seconds = now_seconds
        self.last_token_seconds = now_seconds
        if is_eog:
            self.finish_reason = "stop"
            return self.text.finish()
        text = self.text.push(piece)
        if self.text.stopped:
            self.finish_reason = "stop"
        elif self.completion_tokens >= self.request.max_tokens:
            text += self.text.finish()
            self.finish_reason = "stop" if self.text.stopped else "length"
        return text

    def delta(self, text: str) -> TextDelta | None:
        """The event for text just made showable, with the logprobs of the tokens behind it.

        Logprobs wait for text (a token may hold only part of a character, or what may become
        a stop string); at the end they go out even without text, unless they belong to the
        stop string that ended the request.
        """
        if not text and self.finish_reason is None:
            return None
        logprobs = tuple(self.pending_logprobs)
        self.pending_logprobs.clear()
        if text or (logprobs and not self.text.stopped):
            return TextDelta(text, logprobs)
        return None

    def finish(self, reason: FinishReason) -> None:
        self.status = SequenceStatus.FINISHED
        self.finish_reason = reason
