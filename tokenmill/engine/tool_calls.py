"""Generated text in, content and tool-call fragments out, as the text streams.

The model writes calls in the generic format ``<tool_call>{"name": ..., "arguments": {...}}
</tool_call>``. Text that may be the start of a call is held back until the next piece decides
it. Once a call's name is known (and is one the model may call), its head goes out (id, name)
and its arguments stream as they come, piece by piece, the way OpenAI streams them; a call
written in any other JSON shape goes out whole when it closes. Anything that does not turn out
to be a call of an allowed function is content after all.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import orjson

from tokenmill.engine.request import EngineEvent, Finished, PromptLogprobs, TextDelta
from tokenmill.engine.tool_grammar import CALL_CLOSE, CALL_OPEN

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of call number ``index``: its head (``id`` and ``name``) or arguments."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


Fragment = str | ToolCallDelta  # content text, or a piece of a tool call


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ToolCallParser:
    def __init__(self, names: Collection[str], new_id: Callable[[], str] = new_call_id) -> None:
        self._names = frozenset(names)
        self._new_id = new_id
        self._pending = ""  # text not yet decided
        self._gap = ""  # whitespace before the opening tag, content if no call follows
        self._in_call = False  # after an opening tag, before its closing tag
        self._streaming = False  # this call's head went out; its arguments are streaming
        self._scan = _JsonScan()
        self._calls = 0
        self._content_seen = False

    @property
    def calls(self) -> int:
        """How many calls went out so far."""
        return self._calls

    def push(self, text: str) -> list[Fragment]:
        self._pending += text
        out: list[Fragment] = []
        while True:
            before = len(out), self._pending, self._in_call
            if self._in_call:
                self._call_step(out, final=False)
            else:
                self._text_step(out, final=False)
            if (len(out), self._pending, self._in_call) == before:
                return out

    def finish(self) -> list[Fragment]:
        """End of generation: whatever was held back, as content or as a last call."""
        out: list[Fragment] = []
        if self._in_call:
            self._call_step(out, final=True)
        if self._in_call and not self._streaming:  # never closed: it was text after all
            self._content(out, self._gap + CALL_OPEN + self._pending)
            self._pending = ""
        self._in_call = False
        if self._pending:
            self._text_step(out, final=True)
        return out

    def _text_step(self, out: list[Fragment], *, final: bool) -> None:
        start = self._pending.find(CALL_OPEN)
        if start >= 0:
            before = self._pending[:start]
            self._content(out, before.rstrip())
            self._gap = before[len(before.rstrip()) :]  # whitespace before a call is no content
            self._pending = self._pending[start + len(CALL_OPEN) :]
            self._in_call, self._streaming = True, False
            return
        keep = 0 if final else _held_chars(self._pending, CALL_OPEN)
        text = self._pending[: len(self._pending) - keep]
        if not final or self._calls:
            text = text.rstrip()  # trailing whitespace waits: it may only precede a call
        if final and not self._content_seen and not text.strip():
            text = ""
        self._content(out, text)
        self._pending = "" if final else self._pending[len(text) :]

    def _content(self, out: list[Fragment], text: str) -> None:
        if text:
            self._content_seen = True
            out.append(text)

    def _call_step(self, out: list[Fragment], *, final: bool) -> None:
        if not self._streaming:
            head = _HEAD.match(self._pending)
            if head is not None:
                name = _unescape(head.group(1))
                if name in self._names:
                    out.append(ToolCallDelta(self._calls, "", self._new_id(), name))
                    self._streaming = True
                    self._scan = _JsonScan()
                    self._pending = self._pending[head.end() :]
                    return
            close = self._pending.find(CALL_CLOSE)
            if close < 0:
                return  # undecided; finish() shows an unclosed call as text
            body, rest = self._pending[:close], self._pending[close + len(CALL_CLOSE) :]
            call = _whole_call(body, self._names)
            if call is None:
                self._content(out, self._gap + CALL_OPEN + body + CALL_CLOSE)
            else:
                name, arguments = call
                out.append(ToolCallDelta(self._calls, "", self._new_id(), name))
                out.append(ToolCallDelta(self._calls, arguments))
                self._calls += 1
            self._pending, self._in_call = rest, False
            return
        if not self._scan.done:
            if not self._scan.started:
                self._pending = self._pending.lstrip()
            used = self._scan.feed(self._pending)
            piece, self._pending = self._pending[:used], self._pending[used:]
            if piece:
                out.append(ToolCallDelta(self._calls, piece))
            if not self._scan.done:
                return
        close = self._pending.find(CALL_CLOSE)
        if close >= 0:
            self._pending = self._pending[close + len(CALL_CLOSE) :]
        elif not final:
            return
        else:
            self._pending = ""
        self._in_call, self._streaming = False, False
        self._calls += 1


ChatEvent = EngineEvent | ToolCallDelta


async def tool_events(
    events: AsyncGenerator[tuple[int, EngineEvent], None], names: Collection[str], n: int
) -> AsyncIterator[tuple[int, ChatEvent]]:
    """Each choice's text split into content and tool calls; a choice that called a function
    and stopped finishes with ``tool_calls``. A content delta keeps the logprobs of the tokens
    it came with; a call's tokens have none."""
    parsers = [ToolCallParser(names) for _ in range(n)]
    try:
        async for index, event in events:
            parser = parsers[index]
            if isinstance(event, Finished):
                for fragment in parser.finish():
                    yield index, _chat_event(fragment)
                if parser.calls and event.finish_reason == "stop":
                    event = replace(event, finish_reason="tool_calls")
                yield index, event
                continue
            if isinstance(event, PromptLogprobs):  # a chat request never asks for these
                yield index, event
                continue
            logprobs = event.logprobs
            for fragment in parser.push(event.text):
                yield index, _chat_event(fragment, logprobs)
                if isinstance(fragment, str):
                    logprobs = ()
    finally:
        await events.aclose()


def _chat_event(fragment: Fragment, logprobs: tuple[Any, ...] = ()) -> ChatEvent:
    return TextDelta(fragment, logprobs) if isinstance(fragment, str) else fragment


def parse_tool_calls(text: str, names: Collection[str]) -> tuple[str, list[dict[str, Any]]]:
    """A whole output as content and calls (``{"id", "name", "arguments"}``)."""
    parser = ToolCallParser(names)
    fragments = parser.push(text) + parser.finish()
    content = "".join(f for f in fragments if isinstance(f, str))
    calls: list[dict[str, Any]] = []
    for fragment in fragments:
        if isinstance(fragment, ToolCallDelta):
            if fragment.id is not None:
                calls.append({"id": fragment.id, "name": fragment.name, "arguments": ""})
            calls[fragment.index]["arguments"] += fragment.arguments
    return content, calls


class _JsonScan:
    """Finds where one JSON value ends in text that arrives in pieces."""

    def __init__(self) -> None:
        self.done = False
        self.started = False
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, text: str) -> int:
        """How many characters of ``text`` belong to the value (all, until it ends)."""
        for i, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                    if self._depth == 0:
                        return self._end(i)
                continue
            if char == '"':
                self._in_string, self.started = True, True
            elif char in "{[":
                self._depth += 1
                self.started = True
            elif char in "}]":
                if self._depth == 0:  # closes what holds a bare value
                    self.done = True
                    return i
                self._depth -= 1
                if self._depth == 0:
                    return self._end(i)
            elif not char.isspace():
                self.started = True  # a bare number, true, false or null: ends at , } or <
                if self._depth == 0 and char == ",":
                    self.done = True
                    return i
            elif self.started and self._depth == 0:
                self.done = True
                return i
        return len(text)

    def _end(self, i: int) -> int:
        self.done = True
        return i + 1


def _whole_call(body: str, names: Collection[str]) -> tuple[str, str] | None:
    """A call written as one JSON object ``{"name", "arguments"|"parameters"}``, if it is one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        return value["name"], arguments
    return value["name"], orjson.dumps(arguments).decode()


def _unescape(name: str) -> str:
    try:
        value = orjson.loads(f'"{name}"')
    except orjson.JSONDecodeError:
        return name
    return value if isinstance(value, str) else name


def _held_chars(text: str, tag: str) -> int:
    """Length of the longest tail of ``text`` that begins ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0
