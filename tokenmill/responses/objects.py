"""The response object of the Responses API, its usage, and how it is shown to a client.

A response's output items are kept whole (a ``file_search_call`` keeps its results, which a
follow-up response needs); the client sees a ``file_search_call``'s results only when it asked
for them with ``include: ["file_search_call.results"]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tokenmill.responses.request import ResponseRequest

RESULTS = "file_search_call.results"


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0

    def add(self, usage: Any) -> None:
        """Adds one chat call's ``usage`` (OpenAI's chat shape)."""
        if not isinstance(usage, dict):
            return
        self.calls += 1
        self.input_tokens += int(usage.get("prompt_tokens") or 0)
        self.output_tokens += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens += int(details.get("cached_tokens") or 0)

    def as_openai(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


def new_response(
    response_id: str, request: ResponseRequest, model: str, created_at: int, service_tier: str
) -> dict[str, Any]:
    """The response as it starts (``in_progress``, no output)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": service_tier,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": request.text_format},
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation,
        "usage": None,
        "user": request.user,
        "metadata": request.metadata,
    }


def shown(response: dict[str, Any], include: frozenset[str] | set[str]) -> dict[str, Any]:
    """The response as the client sees it: file search results only when included."""
    if RESULTS in include or not any(
        item["type"] == "file_search_call" for item in response["output"]
    ):
        return response
    out = copy.copy(response)
    out["output"] = [shown_item(item, include) for item in response["output"]]
    return out


def shown_item(item: dict[str, Any], include: frozenset[str] | set[str]) -> dict[str, Any]:
    if item["type"] != "file_search_call" or RESULTS in include:
        return item
    return {**item, "results": None}


def output_text(response: dict[str, Any]) -> str:
    """All the output text of a response, as the SDKs' ``output_text`` joins it."""
    return "".join(
        part.get("text", "")
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
