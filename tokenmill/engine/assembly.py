"""From the merged events of a request's choices to what the client gets: stream or body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenmill.engine.request import Finished, PromptLogprobs, TokenLogprob, choices_usage
from tokenmill.engine.responses import Choice, ResponseFormat, ToolCall
from tokenmill.engine.tool_calls import ChatEvent, ToolCallDelta
from tokenmill.errors import TokenmillError

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class _Progress:
    """What one choice has produced so far."""

    parts: list[str] = field(default_factory=list)
    chars: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)  # id, name, arguments so far
    prompt: PromptLogprobs | None = None
    finished: Finished | None = None


async def sse(
    events: AsyncIterator[tuple[int, ChatEvent]], fmt: ResponseFormat, n: int
) -> AsyncIterator[bytes]:
    """Server-sent events: each choice's opening, deltas and finish, then the usage of all."""
    progress = [_Progress() for _ in range(n)]
    for index in range(n):
        for chunk in fmt.opening(index):
            yield sse_event(chunk)
    async for index, event in events:
        choice = progress[index]
        if isinstance(event, ToolCallDelta):
            yield sse_event(fmt.tool_call(index, event))
            continue
        if isinstance(event, PromptLogprobs):
            yield sse_event(fmt.prompt(index, event))
            continue
        if not isinstance(event, Finished):
            yield sse_event(fmt.delta(index, event.text, event.logprobs, choice.chars))
            choice.chars += len(event.text)
            continue
        choice.finished = event
        if event.error is not None:
            yield sse_event(TokenmillError(event.error).body())
        else:
            yield sse_event(fmt.finish(index, event.finish_reason))
    ended = [choice.finished for choice in progress if choice.finished is not None]
    if ended:
        yield sse_event(fmt.usage_chunk(choices_usage([f.usage for f in ended])))
    yield DONE


async def collect(
    events: AsyncIterator[tuple[int, ChatEvent]], fmt: ResponseFormat, n: int
) -> dict[str, Any]:
    """The whole response body once every choice has ended; an error if any choice failed."""
    progress = [_Progress() for _ in range(n)]
    async for index, event in events:
        choice = progress[index]
        if isinstance(event, Finished):
            choice.finished = event
        elif isinstance(event, PromptLogprobs):
            choice.prompt = event
        elif isinstance(event, ToolCallDelta):
            if event.id is not None:
                choice.calls.append([event.id, event.name or "", ""])
            choice.calls[event.index][2] += event.arguments
        else:
            choice.parts.append(event.text)
            choice.logprobs.extend(event.logprobs)
    finished = [choice.finished for choice in progress]
    if any(f is None for f in finished):
        raise RuntimeError("the engine's event stream ended without a Finished event")
    ended = [f for f in finished if f is not None]
    for f in ended:
        if f.error is not None:
            raise TokenmillError(f.error)
    choices = [
        Choice(
            "".join(choice.parts),
            f.finish_reason,
            tuple(choice.logprobs),
            tuple(ToolCall(*call) for call in choice.calls),
            choice.prompt,
        )
        for choice, f in zip(progress, ended, strict=True)
    ]
    return fmt.response(choices, choices_usage([f.usage for f in ended]))


def sse_event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"
