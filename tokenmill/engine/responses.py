"""Response bodies and stream chunks in OpenAI's shapes, for chat and for text completions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tokenmill.engine.request import PromptLogprobs, TokenLogprob, Usage
from tokenmill.engine.tool_calls import ToolCallDelta

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True, slots=True)
class Choice:
    """One finished choice of a non-streamed response."""

    text: str
    finish_reason: str
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    prompt: PromptLogprobs | None = None  # the prompt's logprobs, when asked (``echo``)


class ResponseFormat(Protocol):
    def opening(self, index: int) -> list[Json]:
        """Chunks sent for a choice before any generated text."""
        ...

    def delta(self, index: int, text: str, logprobs: Sequence[TokenLogprob], offset: int) -> Json:
        """A chunk of a choice's text; ``offset`` is how many characters of it came before."""
        ...

    def tool_call(self, index: int, delta: ToolCallDelta) -> Json:
        """A chunk of a choice's tool call: its head, or a piece of its arguments."""
        ...

    def prompt(self, index: int, echoed: PromptLogprobs) -> Json:
        """A chunk of the echoed prompt with its logprobs (text completions)."""
        ...

    def finish(self, index: int, finish_reason: str) -> Json: ...

    def usage_chunk(self, usage: Usage) -> Json: ...

    def response(self, choices: Sequence[Choice], usage: Usage) -> Json: ...


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
    logprobs: bool = False
    service_tier: str = "default"

    def opening(self, index: int) -> list[Json]:
        return [self._chunk(index, {"role": "assistant", "content": ""}, None)]

    def delta(self, index: int, text: str, logprobs: Sequence[TokenLogprob], offset: int) -> Json:
        return self._chunk(index, {"content": text}, None, self._logprobs(logprobs))

    def tool_call(self, index: int, delta: ToolCallDelta) -> Json:
        call: Json = {"index": delta.index}
        if delta.id is not None:
            call["id"] = delta.id
            call["type"] = "function"
            call["function"] = {"name": delta.name, "arguments": delta.arguments}
        else:
            call["function"] = {"arguments": delta.arguments}
        return self._chunk(index, {"tool_calls": [call]}, None)

    def prompt(self, index: int, echoed: PromptLogprobs) -> Json:
        raise TypeError("chat completions do not echo the prompt")

    def finish(self, index: int, finish_reason: str) -> Json:
        return self._chunk(index, {}, finish_reason)

    def usage_chunk(self, usage: Usage) -> Json:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage_json(usage)}

    def response(self, choices: Sequence[Choice], usage: Usage) -> Json:
        return {
            **self._head("chat.completion"),
            "choices": [
                {
                    "index": index,
                    "message": _message(choice),
                    "logprobs": self._logprobs(choice.logprobs),
                    "finish_reason": choice.finish_reason,
                }
                for index, choice in enumerate(choices)
            ],
            "usage": usage_json(usage),
        }

    def _logprobs(self, logprobs: Sequence[TokenLogprob]) -> Json | None:
        if not self.logprobs:
            return None
        content = [
            {
                **_token_json(lp.piece, lp.logprob),
                "top_logprobs": [_token_json(top.piece, top.logprob) for top in lp.top],
            }
            for lp in logprobs
        ]
        return {"content": content}

    def _chunk(
        self, index: int, delta: Json, finish_reason: str | None, logprobs: Json | None = None
    ) -> Json:
        choice = {
            "index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason
        }  # fmt: skip
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def _head(self, kind: str) -> Json:
        return {
            "id": f"chatcmpl-{self.request_id}",
            "object": kind,
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier,
        }


@dataclass(frozen=True, slots=True)
class CompletionFormat:
    request_id: str
    created: int
    model: str
    echo: str | None = None
    logprobs: bool = False
    service_tier: str = "default"

    @property
    def echo_logprobs(self) -> bool:
        """The echoed prompt comes with its logprobs, once the engine has them."""
        return self.echo is not None and self.logprobs

    def opening(self, index: int) -> list[Json]:
        if self.echo_logprobs:
            return []  # the prompt goes out with its logprobs (``prompt``)
        return [self._chunk(index, self.echo, None)] if self.echo else []

    def delta(self, index: int, text: str, logprobs: Sequence[TokenLogprob], offset: int) -> Json:
        offset += len(self.echo or "")
        return self._chunk(index, text, None, self._logprobs(logprobs, offset))

    def tool_call(self, index: int, delta: ToolCallDelta) -> Json:
        raise TypeError("text completions have no tool calls")

    def prompt(self, index: int, echoed: PromptLogprobs) -> Json:
        return self._chunk(index, self.echo or "", None, self._prompt_logprobs(echoed))

    def finish(self, index: int, finish_reason: str) -> Json:
        return self._chunk(index, "", finish_reason)

    def usage_chunk(self, usage: Usage) -> Json:
        return {**self._head(), "choices": [], "usage": usage_json(usage)}

    def response(self, choices: Sequence[Choice], usage: Usage) -> Json:
        return {
            **self._head(),
            "choices": [
                {
                    "index": index,
                    "text": (self.echo or "") + choice.text,
                    "logprobs": self._choice_logprobs(choice),
                    "finish_reason": choice.finish_reason,
                }
                for index, choice in enumerate(choices)
            ],
            "usage": usage_json(usage),
        }

    def _choice_logprobs(self, choice: Choice) -> Json | None:
        generated = self._logprobs(choice.logprobs, len(self.echo or ""))
        if generated is None or choice.prompt is None:
            return generated
        echoed = self._prompt_logprobs(choice.prompt)
        return {key: echoed[key] + generated[key] for key in echoed}

    def _prompt_logprobs(self, echoed: PromptLogprobs) -> Json:
        """The prompt's tokens as OpenAI echoed them: the first without a logprob (null).
        Offsets are into the echoed text, counted back from its end: a token the tokenizer
        added in front (a BOS) is not in the text and sits at 0."""
        pieces = b"".join([echoed.first, *(lp.piece for lp in echoed.logprobs)])
        added = len(pieces.decode(errors="ignore")) - len(self.echo or "")
        first = len(echoed.first.decode(errors="ignore"))
        rest = self._logprobs(echoed.logprobs, first - added) or {}
        return {
            "tokens": [_text(echoed.first), *rest.get("tokens", ())],
            "token_logprobs": [None, *rest.get("token_logprobs", ())],
            "top_logprobs": [None, *rest.get("top_logprobs", ())],
            "text_offset": [max(o, 0) for o in (-added, *rest.get("text_offset", ()))],
        }

    def _logprobs(self, logprobs: Sequence[TokenLogprob], offset: int) -> Json | None:
        """The legacy shape; each top dict also holds the sampled token, as OpenAI's does."""
        if not self.logprobs:
            return None
        offsets = []
        before = b""
        for lp in logprobs:
            offsets.append(offset + len(before.decode(errors="ignore")))
            before += lp.piece
        tops = []
        for lp in logprobs:
            top = {_text(t.piece): t.logprob for t in lp.top}
            top.setdefault(_text(lp.piece), lp.logprob)
            tops.append(top)
        return {
            "tokens": [_text(lp.piece) for lp in logprobs],
            "token_logprobs": [lp.logprob for lp in logprobs],
            "top_logprobs": tops,
            "text_offset": offsets,
        }

    def _chunk(
        self, index: int, text: str, finish_reason: str | None, logprobs: Json | None = None
    ) -> Json:
        choice = {
            "index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason
        }  # fmt: skip
        return {**self._head(), "choices": [choice]}

    def _head(self) -> Json:
        return {
            "id": f"cmpl-{self.request_id}",
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "service_tier": self.service_tier,
        }


def _message(choice: Choice) -> Json:
    if not choice.tool_calls:
        return {"role": "assistant", "content": choice.text}
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in choice.tool_calls
    ]
    return {"role": "assistant", "content": choice.text or None, "tool_calls": calls}


def _text(piece: bytes) -> str:
    return piece.decode(errors="replace")


def _token_json(piece: bytes, logprob: float) -> Json:
    return {"token": _text(piece), "logprob": logprob, "bytes": list(piece)}
