"""Stand-ins for the agent loop's edges: model calls that stream scripted chat chunks in the
engine's shape (recording the bodies they were opened with and whether they were closed), and a
file search that answers fixed results."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenmill.clock import ManualClock
from tokenmill.errors import TokenmillError
from tokenmill.responses.request import FileSearchTool

Json = dict[str, Any]


def chunk(delta: Json, finish_reason: str | None = None) -> Json:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [choice]}  # fmt: skip


def reply(
    *text: str,
    calls: Sequence[tuple[str, str]] = (),
    finish: str | None = None,
    prompt: int = 10,
    completion: int = 5,
) -> list[Json]:
    """One model call as the engine streams it: role, text, calls (head, then arguments two
    characters at a time), finish, usage."""
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in text]
    for index, (name, arguments) in enumerate(calls):
        head = {"index": index, "id": f"call_{index}", "type": "function",
                "function": {"name": name, "arguments": ""}}  # fmt: skip
        out.append(chunk({"tool_calls": [head]}))
        for at in range(0, len(arguments), 2):
            piece = {"index": index, "function": {"arguments": arguments[at : at + 2]}}
            out.append(chunk({"tool_calls": [piece]}))
    out.append(chunk({}, finish or ("tool_calls" if calls else "stop")))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    out.append(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    )
    return out


def searching(query: str, prompt: int = 10, completion: int = 5) -> list[Json]:
    arguments = orjson.dumps({"query": query}).decode()
    return reply(calls=[("file_search", arguments)], prompt=prompt, completion=completion)


@dataclass
class ScriptedCall:
    script: list[Json | TokenmillError]
    closed: int = 0

    async def chunks(self) -> AsyncIterator[Json]:
        for entry in self.script:
            if isinstance(entry, TokenmillError):
                raise entry
            yield copy.deepcopy(entry)

    async def close(self) -> None:
        self.closed += 1


@dataclass
class ScriptedModels:
    """Answers each ``open`` with the next scripted reply (or raises the scripted error)."""

    replies: list[list[Json | TokenmillError] | TokenmillError]
    bodies: list[Json] = field(default_factory=list)
    calls: list[ScriptedCall] = field(default_factory=list)

    async def open(self, body: Json) -> ScriptedCall:
        self.bodies.append(copy.deepcopy(body))
        assert self.replies, "the loop opened more model calls than were scripted"
        next_reply = self.replies.pop(0)
        if isinstance(next_reply, TokenmillError):
            raise next_reply
        self.calls.append(ScriptedCall(next_reply))
        return self.calls[-1]


@dataclass
class FixedSearch:
    results: list[Json]
    clock: ManualClock
    seconds_per_search: float = 0.0
    queries: list[str] = field(default_factory=list)

    async def search(self, tool: FileSearchTool, query: str) -> list[Json]:
        assert tool.vector_store_ids == ("vs_1",)
        self.queries.append(query)
        self.clock.advance(self.seconds_per_search)
        return copy.deepcopy(self.results)
