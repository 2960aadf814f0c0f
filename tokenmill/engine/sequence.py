"""One request's runtime state while the engine works on it, free of any kernel library."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tokenmill.engine.request import EngineRequest, FinishReason, Usage
from tokenmill.engine.text_stream import TextStream


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True)
class Sequence:
    request: EngineRequest
    arrival_seconds: float
    status: SequenceStatus = SequenceStatus.WAITING
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: FinishReason | None = None
    abort_requested: bool = False
    first_token_seconds: float | None = None
    last_token_seconds: float | None = None
    text: TextStream = field(init=False)

    def __post_init__(self) -> None:
        self.text = TextStream(self.request.sampling.stop)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=len(self.request.prompt_tokens),
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
        )

    def append(self, piece: bytes, *, is_eog: bool, now_seconds: float) -> str:
        """Record one sampled token; return the text it makes showable.

        Sets ``finish_reason`` when this token ends the request (end of generation, a stop
        string, or the token budget).
        """
        self.completion_tokens += 1
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

    def finish(self, reason: FinishReason) -> None:
        self.status = SequenceStatus.FINISHED
        self.finish_reason = reason
