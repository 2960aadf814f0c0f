"""One model call of a response: its streamed chat chunks turned into output items and events.

Text becomes a ``message`` item (``output_item.added``, ``content_part.added``,
``output_text.delta``... then the ``done`` events, with its citations); each tool call of a
client's function becomes a ``function_call`` item (``function_call_arguments.delta``...);
a call of a tool the platform runs (``file_search``, an MCP server's) is collected for the
platform to run and shows no events here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tokenmill.responses.citations import annotate
from tokenmill.responses.items import new_id
from tokenmill.responses.objects import Usage
from tokenmill.responses.request import FILE_SEARCH

Event = dict[str, Any]


@dataclass(slots=True)
class PendingCall:
    call_id: str
    name: str
    arguments: str = ""
    item: dict[str, Any] | None = None  # the function_call item; None for a platform tool
    output_index: int = -1


@dataclass(slots=True)
class Step:
    """Reads one call's chunks; ``output`` is the response's output list, appended to."""

    output: list[dict[str, Any]]
    usage: Usage
    sources: list[dict[str, Any]]  # the latest file search results, numbered as the model saw
    platform_names: frozenset[str] = frozenset({FILE_SEARCH})  # the tools the platform runs
    message: dict[str, Any] | None = None
    message_index: int = -1
    calls: dict[int, PendingCall] = field(default_factory=dict)
    finish_reason: str | None = None

    @property
    def platform_calls(self) -> list[PendingCall]:
        return [call for call in self.calls.values() if call.item is None]

    @property
    def client_calls(self) -> list[PendingCall]:
        return [call for call in self.calls.values() if call.item is not None]

    def feed(self, chunk: dict[str, Any]) -> Iterator[Event]:
        if chunk.get("usage") is not None:
            self.usage.add(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield from self._text(delta["content"])
            for fragment in delta.get("tool_calls") or ():
                yield from self._call(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _add(self, item: dict[str, Any]) -> Iterator[Event]:
        self.output.append(item)
        yield {
            "type": "response.output_item.added",
            "output_index": len(self.output) - 1,
            "item": dict(item),
        }

    def _text(self, text: str) -> Iterator[Event]:
        if self.message is None:
            self.message = {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            yield from self._add(self.message)
            self.message_index = len(self.output) - 1
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self.message["content"].append(part)
            yield {
                **self._where(),
                "type": "response.content_part.added",
                "part": dict(part),
            }
        part = self.message["content"][0]
        part["text"] += text
        yield {**self._where(), "type": "response.output_text.delta", "delta": text, "logprobs": []}

    def _where(self) -> Event:
        assert self.message is not None
        return {
            "item_id": self.message["id"],
            "output_index": self.message_index,
            "content_index": 0,
        }

    def _call(self, fragment: dict[str, Any]) -> Iterator[Event]:
        index = int(fragment.get("index") or 0)
        function = fragment.get("function") or {}
        call = self.calls.get(index)
        if call is None:
            name = str(function.get("name") or "")
            call = self.calls[index] = PendingCall(str(fragment.get("id") or new_id("call")), name)
            if name not in self.platform_names:
                call.item = {
                    "type": "function_call",
                    "id": new_id("fc"),
                    "call_id": call.call_id,
                    "name": name,
                    "arguments": "",
                    "status": "in_progress",
                }
                yield from self._add(call.item)
                call.output_index = len(self.output) - 1
        arguments = str(function.get("arguments") or "")
        if not arguments:
            return
        call.arguments += arguments
        if call.item is not None:
            call.item["arguments"] = call.arguments
            yield {
                "type": "response.function_call_arguments.delta",
                "item_id": call.item["id"],
                "output_index": call.output_index,
                "delta": arguments,
            }

    def close(self) -> Iterator[Event]:
        """The ``done`` events of the message and of the client's calls, once the call ended
        (a message cut off by the output limit is ``incomplete``)."""
        if self.message is not None:
            part = self.message["content"][0]
            part["annotations"] = annotate(part["text"], self.sources)
            for n, annotation in enumerate(part["annotations"]):
                yield {
                    **self._where(),
                    "type": "response.output_text.annotation.added",
                    "annotation_index": n,
                    "annotation": annotation,
                }
            yield {
                **self._where(),
                "type": "response.output_text.done",
                "text": part["text"],
                "logprobs": [],
            }
            yield {**self._where(), "type": "response.content_part.done", "part": dict(part)}
            self.message["status"] = "incomplete" if self.finish_reason == "length" else "completed"
            yield {
                "type": "response.output_item.done",
                "output_index": self.message_index,
                "item": dict(self.message),
            }
        for call in self.client_calls:
            assert call.item is not None
            call.item["status"] = "incomplete" if self.finish_reason == "length" else "completed"
            yield {
                "type": "response.function_call_arguments.done",
                "item_id": call.item["id"],
                "output_index": call.output_index,
                "arguments": call.arguments,
            }
            yield {
                "type": "response.output_item.done",
                "output_index": call.output_index,
                "item": dict(call.item),
            }
