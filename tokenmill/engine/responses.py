"""Response bodies and stream chunks in OpenAI's shapes, for chat and for text completions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tokenmill.engine.request import Usage

Json = dict[str, Any]


class ResponseFormat(Protocol):
    def opening(self) -> list[Json]:
        """Chunks sent before any generated text."""
        ...

    def delta(self, text: str) -> Json: ...

    def finish(self, finish_reason: str) -> Json: ...

    def usage_chunk(self, usage: Usage) -> Json: ...

    def response(self, text: str, finish_reason: str, usage: Usage) -> Json: ...


def usage_json(usage: Usage) -> Json:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


@dataclass(frozen=True, slots=True)
class ChatFormat:
    request_id: str
    created: int
    model: str

    def opening(self) -> list[Json]:
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def delta(self, text: str) -> Json:
        return self._chunk({"content": text}, None)

    def finish(self, finish_reason: str) -> Json:
        return self._chunk({}, finish_reason)

    def usage_chunk(self, usage: Usage) -> Json:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage_json(usage)}

    def response(self, text: str, finish_reason: str, usage: Usage) -> Json:
        return {
            **self._head("chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_json(usage),
        }

    def _chunk(self, delta: Json, finish_reason: str | None) -> Json:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def _head(self, kind: str) -> Json:
        return {
            "id": f"chatcmpl-{self.request_id}",
            "object": kind,
            "created": self.created,
            "model": self.model,
        }


@dataclass(frozen=True, slots=True)
class CompletionFormat:
    request_id: str
    created: int
    model: str
    echo: str | None = None

    def opening(self) -> list[Json]:
        return [self.delta(self.echo)] if self.echo else []

    def delta(self, text: str) -> Json:
        return self._chunk(text, None)

    def finish(self, finish_reason: str) -> Json:
        return self._chunk("", finish_reason)

    def usage_chunk(self, usage: Usage) -> Json:
        return {**self._head(), "choices": [], "usage": usage_json(usage)}

    def response(self, text: str, finish_reason: str, usage: Usage) -> Json:
        return {
            **self._head(),
            "choices": [
                {
                    "index": 0,
                    "text": (self.echo or "") + text,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_json(usage),
        }

    def _chunk(self, text: str, finish_reason: str | None) -> Json:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head(), "choices": [choice]}

    def _head(self) -> Json:
        return {
            "id": f"cmpl-{self.request_id}",
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
        }
